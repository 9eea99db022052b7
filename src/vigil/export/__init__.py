"""Edge export: a saved model as an ONNX graph (:mod:`~vigil.export.onnx_export`, needs torch and onnx) and the
torch-free scoring runtime a gateway runs (:mod:`~vigil.export.runtime`, needs onnxruntime and numpy)."""

from vigil.export.onnx_export import PARITY_TOLERANCE, export_model
from vigil.export.runtime import OnnxScorer

__all__ = ["PARITY_TOLERANCE", "OnnxScorer", "export_model"]
