"""Type stubs of gmu's native module (python/src/lib.rs); use the `gmu` package's API."""

from os import PathLike
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

class GmuError(Exception):
    """A failure inside gmu (its message says what)."""

Image = Union[bytes, str, PathLike[str]]
Unusable = List[Tuple[int, str, str]]

class NativeModel:
    @property
    def views(self) -> List[str]: ...
    @property
    def widths(self) -> List[int]: ...
    @property
    def classes(self) -> List[str]: ...
    @property
    def task(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def gated(self) -> bool: ...
    @property
    def encoders(self) -> List[Optional[Tuple[str, str]]]: ...
    def config_json(self) -> str: ...
    def predict(
        self, views: Sequence[Tuple[str, npt.NDArray[np.float32]]], importance: bool = True, impute: bool = False
    ) -> Dict[str, np.ndarray]: ...
    def predict_raw(
        self,
        texts: Sequence[Tuple[str, Sequence[str]]],
        images: Sequence[Tuple[str, Sequence[Image]]],
        importance: bool = True,
    ) -> Dict[str, object]: ...
    def save(self, path: Union[str, PathLike[str]]) -> None: ...
    def export_onnx(self, path: Union[str, PathLike[str]]) -> None: ...

def load(path: Union[str, PathLike[str]]) -> NativeModel: ...
def fit(
    views: Sequence[Tuple[str, npt.NDArray[np.float32]]],
    classes: Sequence[str],
    y_classes: Optional[npt.NDArray[np.int64]],
    y_labels: Optional[npt.NDArray[np.uint8]],
    options: str,
    dev: float,
    test: float,
    on_epoch: Optional[Callable[[int, int, float, float], object]] = None,
) -> Tuple[NativeModel, str]: ...
def encode_texts(texts: Sequence[str], encoder: str = "minilm") -> Tuple[npt.NDArray[np.float32], Unusable]: ...
def encode_images(images: Sequence[Image], encoder: str = "effnet-lite0") -> Tuple[npt.NDArray[np.float32], Unusable]: ...
