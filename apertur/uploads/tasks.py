from django_tasks import task

from apertur.uploads import destinations, services


@task()
def deliver_to_destination(delivery_id: int) -> None:
    """One attempt to copy an upload to a destination; failures re-enqueue with backoff."""
    destinations.attempt(delivery_id=delivery_id)


@task()
def notify_owner(upload_id: int) -> None:
    """Mail the project's owner about one upload (``notify_owner_on_upload``)."""
    services.notify_owner_of_upload(upload_id=upload_id)
