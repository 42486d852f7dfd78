"""The plan's file size limit applied while a guest's upload is read, not once it has been received whole."""

from __future__ import annotations

import io
from typing import IO, Any

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.urls import Resolver404, resolve


class PlanFileSizeLimit(FileUploadHandler):
    """First of ``FILE_UPLOAD_HANDLERS``. On the guest upload endpoint (``uploads:file``) it passes each file's
    bytes on to Django's handlers (memory, then a temporary file) up to the link's plan's ``max_file_bytes``, and
    no further: the rest of a larger file is read and counted, never kept, so a guest cannot fill the disk with
    one request. Such a file reaches the view empty, with its real ``size``: ``services.accept_upload`` refuses it
    with its size and the plan's limit, as it refuses any file over the limit. Every other path is left alone."""

    max_bytes: int | None = None

    def handle_raw_input(
        self,
        input_data: IO[bytes],
        META: dict[str, str],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        # Middleware reads the form before any view runs (the CSRF and NUL checks): the limit is found here.
        try:
            match = resolve(self.request.path_info) if self.request is not None else None
        except Resolver404:
            match = None
        if match is not None and match.view_name == "uploads:file":
            from apertur.uploads import selectors

            session = selectors.session_by_token(match.kwargs["token"])
            self.max_bytes = session.project.plan.max_file_bytes if session is not None else None
        return None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.max_bytes is not None and self.received > self.max_bytes:
            return None  # the handlers after this one get nothing more of this file
        return raw_data

    def file_complete(self, file_size: int) -> UploadedFile | None:
        if self.max_bytes is None or self.received <= self.max_bytes:
            return None  # the next handler gives the file
        return UploadedFile(
            io.BytesIO(),
            name=self.file_name,
            content_type=self.content_type,
            size=self.received,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )
