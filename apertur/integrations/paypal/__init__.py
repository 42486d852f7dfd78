"""PayPal Payouts: an httpx client for PayPal's REST API (``client``) and a local emulator speaking the same
endpoints and JSON (``emulator``). Neither needs Django, except ``client.client_from_settings``."""
