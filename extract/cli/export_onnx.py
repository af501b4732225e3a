"""`python -m extract export-onnx`: MODEL_DIR/model.onnx for inference.engine: onnx."""
from __future__ import annotations

import sys


def add(sub) -> None:
    e = sub.add_parser("export-onnx", help="write MODEL_DIR/model.onnx (fp32) for inference.engine: onnx")
    e.add_argument("model_dir", help="a local model directory (config.json, model.safetensors, tokenizer)")
    e.add_argument("--out", default=None, help="where to write the graph (default MODEL_DIR/model.onnx)")
    e.add_argument("--threads", type=int, default=0, help="torch threads for the export (0 = all cores)")



def run(args) -> int:
    from extract.model.export import export_onnx
    from extract.model.loaded import check_model_dir

    try:
        check_model_dir(args.model_dir)
        facts = export_onnx(args.model_dir, args.out, threads=args.threads)
    except (FileNotFoundError, ValueError) as exc:  # OnnxModelError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"error: exporting needs onnx and onnxscript ({exc}); install them with "
              "`pip install -e '.[train]'`.", file=sys.stderr)
        return 2
    print(f"wrote {facts['path']} (opset {facts['opset']}, weights sha256 {facts['weights_sha256'][:12]}..., "
          f"max |logit diff| vs torch {facts['max_abs_logit_diff']:.1e})")
    return 0
