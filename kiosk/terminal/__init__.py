"""The counter terminal: its façade over the core services, the sync client and outbox, the demo.

The screens are kiosk.ui. Imports go terminal -> core only, never to kiosk.district."""
