"""Typed errors raised by the core.

Every mistake a user can make (a corrupt upload, a mask of the wrong size, an unknown bundle) is a
:class:`RestauroError` with a stable machine-readable ``code``. The edges map them once: the HTTP
service to a 4xx JSON body, the CLI to one line on stderr and a non-zero exit. The core never
exits the process and never prints.
"""

from __future__ import annotations


class RestauroError(Exception):
    """Base class: a failure with a stable code and a message meant for the user."""

    code = "restauro_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# --- bad inputs (the user's data or parameters) -------------------------------------------------
class InvalidInput(RestauroError):
    code = "invalid_input"


class InvalidImage(InvalidInput):
    code = "invalid_image"


class ImageTooLarge(InvalidInput):
    code = "image_too_large"


class InvalidMask(InvalidInput):
    code = "invalid_mask"


class MaskSizeMismatch(InvalidMask):
    code = "mask_size_mismatch"


class EmptyMask(InvalidMask):
    code = "empty_mask"


class FullMask(InvalidMask):
    code = "full_mask"


class InvalidParameter(InvalidInput):
    code = "invalid_parameter"


class DatasetError(InvalidInput):
    """The training folder yields nothing usable (empty, only broken files, K too large...)."""

    code = "dataset_error"


class UnknownFeatureKind(InvalidParameter):
    code = "unknown_feature_kind"


# --- things that are not there --------------------------------------------------------------------
class NotFound(RestauroError):
    code = "not_found"


class BundleNotFound(NotFound):
    code = "bundle_not_found"


class UnknownCluster(NotFound):
    code = "unknown_cluster"


# --- the environment ------------------------------------------------------------------------------
class WeightsUnavailable(RestauroError):
    """Pretrained backbone weights can neither be downloaded nor found on disk."""

    code = "weights_unavailable"


class BundleCorrupt(RestauroError):
    """A bundle file is missing or its sha256 differs from the manifest."""

    code = "bundle_corrupt"


class BundleExists(RestauroError):
    """Bundles are immutable: a version is never written twice."""

    code = "bundle_exists"
