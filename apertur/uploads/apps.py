from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "apertur.uploads"
    label = "uploads"

    def ready(self) -> None:
        from apertur.accounts.signals import when_claimed
        from apertur.uploads import services

        # An account claimed from whoever signed up with its address: its uploads and events stop going where
        # that person pointed them.
        when_claimed(services.turn_off_deliveries_of_claimed_account, dispatch_uid="uploads-unproven-signup-claimed")

        from apertur.core import housekeeping
        from apertur.uploads import destinations

        # A copy to the owner's storage whose queued look was lost is queued again (as webhook deliveries are).
        housekeeping.register("overdue_destination_copies", destinations.requeue_overdue)
        # One per guest photo (the upload row, with its time, is the record): 90 days.
        housekeeping.register_routine_audit("upload.created")

        from django.db.models.signals import post_delete

        from apertur.uploads.models import Upload

        # A guest's photo leaves storage with its row (an account or project deleted takes its uploads with it):
        # Django never deletes a FileField's file.
        post_delete.connect(services.delete_stored_file, sender=Upload, dispatch_uid="uploads-delete-stored-file")
