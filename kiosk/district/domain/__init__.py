"""The district's own rules over the core: applying pushes, the terminals' feed, terminal
tokens, reconciliation and the office's reports. No HTTP here: kiosk.district.api and
kiosk.district.console serve it."""
