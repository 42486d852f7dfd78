from django_tasks import task

from apertur.uploads import destinations


@task()
def deliver_to_destination(delivery_id: int) -> None:
    """One attempt to copy an upload to a destination; failures re-enqueue with backoff."""
    destinations.attempt(delivery_id=delivery_id)
