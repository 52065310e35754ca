"""`kiosk demo` end to end, offscreen, in a subprocess as a user runs it: a known
elder is recognised and served, a stranger is sent to the card path and served. (The
elder who has paid and comes back is asked first, not billed again: test_ui's
test_second_meal_by_face_an_elder_who_paid_comes_back; the demo shows it on its second
round, which this test does not wait for.)"""
import os
import subprocess
import sys
import tempfile


def test_demo_runs_the_whole_flow_offscreen(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env.update(QT_QPA_PLATFORM="offscreen", KIOSK_AUDIO="off", HOME=os.environ.get("HOME", str(tmp_path)))
    proc = subprocess.run([sys.executable, "-m", "kiosk.cli.main", "-v", "demo", "--sales", "2", "--seconds", "150"],
                          capture_output=True, text=True, timeout=240, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    voice = [ln.rsplit("voice: ", 1)[1] for ln in log.splitlines() if "voice: " in ln]
    liveness = [ln for ln in log.splitlines() if "liveness " in ln]     # what the challenge saw, if it failed
    assert any(v.startswith("张桂兰 阿姨您好") for v in voice), (voice, liveness)
    assert any(v.startswith("没有认出您") for v in voice), voice
    assert any(v.startswith("王德福 叔叔您好") for v in voice), voice      # the card path
    assert sum(v.startswith("结算成功") for v in voice) == 2, voice
    # --sales 2: it ended after the second meal, well before the 150 s
    assert "stopping after 2 meals" in log, log[-3000:]
    folder = log.split("demo canteen in ", 1)[1].split(" (", 1)[0]
    assert folder.startswith(tempfile.gettempdir()) and not os.path.exists(folder)   # removed on exit
