import sharp from "sharp";
import { ArgumentError, errorMessage } from "../errors.js";
import { IMAGE_INPUT, type ImagePreprocess } from "../onnx/preprocess.js";
import { ort } from "../onnx/ort.js";
import type { Tensors } from "../runtime/coordinator/pipeline.js";
import type { ServedModel } from "./server.js";

/**
 * Decodes one encoded image (JPEG, PNG, WebP...) with `sharp` into the uint8 RGB pixels a preprocessed model
 * takes, [1, H, W, 3], resized to exactly H x W. A file that is not an image is an ArgumentError (HTTP 400).
 */
export async function decodeImage(
  bytes: Uint8Array,
  p: Pick<ImagePreprocess, "height" | "width">,
): Promise<ort.Tensor> {
  let raw: Buffer;
  try {
    raw = await sharp(bytes)
      .toColourspace("srgb")
      .removeAlpha()
      .resize(p.width, p.height, { fit: "fill" })
      .raw()
      .toBuffer();
  } catch (err) {
    throw new ArgumentError(`input '${IMAGE_INPUT}': not an image sharp can decode (${errorMessage(err)})`, {
      tensor: IMAGE_INPUT,
    });
  }
  if (raw.byteLength !== p.height * p.width * 3)
    throw new ArgumentError(
      `input '${IMAGE_INPUT}': decoded to ${raw.byteLength} bytes, not ${p.height}x${p.width} RGB`,
      {
        tensor: IMAGE_INPUT,
      },
    );
  return new ort.Tensor("uint8", new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), [
    1,
    p.height,
    p.width,
    3,
  ]);
}

/**
 * Serves a model whose graph starts with image preprocessing (see prependImagePreprocess) with its `image`
 * input taken as one encoded image, datatype BYTES, shape [1]: each request's image is decoded and resized
 * here, and everything after (scaling, normalisation, layout) runs in the pipeline's first stage.
 */
export function withEncodedImageInput(model: ServedModel, p: ImagePreprocess): ServedModel {
  return {
    name: model.name,
    signature: {
      inputs: model.signature.inputs.map((i) =>
        i.name === IMAGE_INPUT ? { name: IMAGE_INPUT, dtype: "string", shape: [1] } : i,
      ),
      outputs: model.signature.outputs,
    },
    ready: () => model.ready(),
    async infer(feeds: Tensors, opts: { signal: AbortSignal }) {
      const encoded = feeds[IMAGE_INPUT].data as string[];
      const pixels = await decodeImage(Buffer.from(encoded[0], "latin1"), p);
      return model.infer({ ...feeds, [IMAGE_INPUT]: pixels }, opts);
    },
  };
}
