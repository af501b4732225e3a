"""`python -m extract export-onnx`: MODEL_DIR/model.onnx for inference.engine: onnx (and with --int8
model.int8.onnx for onnx-int8)."""
from __future__ import annotations

import sys


def add(sub) -> None:
    e = sub.add_parser("export-onnx", help="write MODEL_DIR/model.onnx (fp32) for inference.engine: onnx")
    e.add_argument("model_dir", help="a local model directory (config.json, model.safetensors, tokenizer)")
    e.add_argument("--out", default=None, help="where to write the graph (default MODEL_DIR/model.onnx)")
    e.add_argument("--threads", type=int, default=0, help="torch threads for the export (0 = all cores)")
    e.add_argument("--int8", action="store_true",
                   help="also write MODEL_DIR/model.int8.onnx (dynamic int8) for inference.engine: onnx-int8")


def run(args) -> int:
    from extract.model.export import export_int8, export_onnx
    from extract.model.loaded import check_model_dir

    if args.int8 and args.out:
        print("error: --int8 writes model.int8.onnx beside MODEL_DIR/model.onnx; drop --out to use it.",
              file=sys.stderr)
        return 2
    try:
        check_model_dir(args.model_dir)
        facts = export_onnx(args.model_dir, args.out, threads=args.threads)
        int8 = export_int8(args.model_dir, threads=args.threads) if args.int8 else None
    except (FileNotFoundError, ValueError) as exc:  # OnnxModelError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"error: exporting needs onnx and onnxscript ({exc}); install them with "
              "`pip install -e '.[train]'`.", file=sys.stderr)
        return 2
    print(f"wrote {facts['path']} (opset {facts['opset']}, weights sha256 {facts['weights_sha256'][:12]}..., "
          f"max |logit diff| vs torch {facts['max_abs_logit_diff']:.1e})")
    if int8:
        print(f"wrote {int8['path']} (dynamic int8; max |logit diff| vs torch {int8['max_abs_logit_diff']:.2f}, "
              f"{int8['relative_diff']:.1%} of the largest logit)")
    return 0
