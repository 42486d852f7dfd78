from django_tasks import task

from apertur.webhooks import services


@task()
def deliver_webhook(delivery_id: int) -> None:
    """One delivery attempt; on failure the service enqueues the next one with its backoff."""
    services.attempt(delivery_id=delivery_id)
