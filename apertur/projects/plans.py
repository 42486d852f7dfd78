"""The price list, in CAD cents per month. Used by the data migration that seeds plans."""

GIB = 1024**3
MIB = 1024**2

PLANS = [
    {
        "name": "Free",
        "price_cents": 0,
        "uploads_per_month": 100,
        "storage_bytes": 1 * GIB,
        "max_active_sessions": 1,
        "max_file_bytes": 10 * MIB,
        "sort_order": 0,
    },
    {
        "name": "Pro",
        "price_cents": 2499,
        "uploads_per_month": 5000,
        "storage_bytes": 100 * GIB,
        "max_active_sessions": 20,
        "max_file_bytes": 50 * MIB,
        "sort_order": 1,
    },
    {
        "name": "Business",
        "price_cents": 9999,
        "uploads_per_month": 50000,
        "storage_bytes": 1024 * GIB,
        "max_active_sessions": 200,
        "max_file_bytes": 200 * MIB,
        "sort_order": 2,
    },
]
