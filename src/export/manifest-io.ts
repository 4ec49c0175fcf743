import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError, errorMessage } from "../errors.js";
import type { Manifest } from "./manifest.js";

/**
 * Reads `manifest.json` from a split folder (or the file itself) and checks that data flows forward:
 * every stage input is a model input or an output of an earlier stage, and every model output is produced.
 */
export function readManifest(pathOrDir: string): { manifest: Manifest; dir: string } {
  const isDir = existsSync(pathOrDir) && statSync(pathOrDir).isDirectory();
  const file = isDir ? join(pathOrDir, "manifest.json") : pathOrDir;
  const dir = isDir ? pathOrDir : join(pathOrDir, "..");
  if (!existsSync(file))
    throw new ArgumentError(`${file}: no such file (expected the manifest.json of a split)`, { file });
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(file, "utf8")) as Manifest;
  } catch (err) {
    throw new ArgumentError(`${file}: not valid JSON (${errorMessage(err)})`, { file });
  }
  if (manifest?.version !== 1 || !Array.isArray(manifest.stages) || !Array.isArray(manifest.inputs)) {
    throw new ArgumentError(`${file}: not a cleave manifest (version 1 with inputs and stages expected)`, {
      file,
    });
  }
  const available = new Set(manifest.inputs.map((i) => i.name));
  manifest.stages.forEach((st, i) => {
    for (const name of st.inputs) {
      if (!available.has(name)) {
        throw new ArgumentError(
          `${file}: stages[${i}].inputs: '${name}' is neither a model input nor made by an earlier stage`,
          {
            file,
            field: `stages[${i}].inputs`,
          },
        );
      }
    }
    if (!existsSync(join(dir, st.file))) {
      throw new ArgumentError(`${file}: stages[${i}].file: ${st.file} not found`, {
        file,
        field: `stages[${i}].file`,
      });
    }
    if (st.data !== undefined && !existsSync(join(dir, st.data.file))) {
      throw new ArgumentError(`${file}: stages[${i}].data.file: ${st.data.file} not found`, {
        file,
        field: `stages[${i}].data.file`,
      });
    }
    if (st.devices !== undefined) {
      const ds = st.devices;
      const ok = Array.isArray(ds) && ds.length > 0 && ds.every((d) => typeof d === "string" && d !== "");
      const twice = ok ? ds.find((d, k) => ds.indexOf(d) !== k) : undefined;
      if (!ok || twice !== undefined || (st.device !== undefined && st.device !== ds[0])) {
        throw new ArgumentError(
          `${file}: stages[${i}].devices: ${!ok ? "expected a list of device names" : twice !== undefined ? `device '${twice}' is listed twice` : `the first device must be 'device' (${st.device})`}`,
          { file, field: `stages[${i}].devices` },
        );
      }
    }
    for (const name of st.outputs) available.add(name);
  });
  for (const o of manifest.outputs) {
    if (!available.has(o.name)) {
      throw new ArgumentError(`${file}: model output '${o.name}' is made by no stage`, {
        file,
        field: "outputs",
      });
    }
  }
  return { manifest, dir };
}
