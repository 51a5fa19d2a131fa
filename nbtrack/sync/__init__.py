"""Online mode: runs from the local store to an MLflow tracking server over its REST API.

Loaded only for online runs and by ``nbtrack sync``; ``import nbtrack`` never imports it
(nor ``requests``).
"""

from .client import Client, ItemRejected, Server
from .service import RunSync, SyncService
from .uploader import Progress, RunUploader

__all__ = ["Client", "ItemRejected", "Progress", "RunSync", "RunUploader", "Server", "SyncService"]
