import { Net, type ZooBuildOptions } from "./layers.js";
import type { ZooEntry } from "./types.js";

/** RegNet design-space parameters (Radosavovic et al. 2020), as torchvision's BlockParams.from_init_params. */
interface RegNetParams {
  depth: number;
  w0: number;
  wa: number;
  wm: number;
  groupWidth: number;
  bottleneck?: number;
}

/** A RegNet stage: output width, number of blocks, group width, bottleneck multiplier. */
export interface RegNetStage {
  width: number;
  depth: number;
  groupWidth: number;
  bottleneck: number;
}

/** Round half to even, as torch.round. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision's _make_divisible: nearest multiple of `d`, never below 90% of `v`. */
function makeDivisible(v: number, d: number): number {
  let nv = Math.max(d, Math.floor((v + d / 2) / d) * d);
  if (nv < 0.9 * v) nv += d;
  return nv;
}

/** The stages of a RegNet from its quantized-linear width rule (torchvision BlockParams.from_init_params). */
export function regnetStages(p: RegNetParams): RegNetStage[] {
  const QUANT = 8;
  const b = p.bottleneck ?? 1;
  const blockWidths: number[] = [];
  for (let i = 0; i < p.depth; i++) {
    const wCont = i * p.wa + p.w0;
    const capacity = roundEven(Math.log(wCont / p.w0) / Math.log(p.wm));
    blockWidths.push(roundEven((p.w0 * p.wm ** capacity) / QUANT) * QUANT);
  }
  const stages: RegNetStage[] = [];
  for (const w of blockWidths) {
    const last = stages[stages.length - 1];
    if (last !== undefined && last.width === w) last.depth++;
    else stages.push({ width: w, depth: 1, groupWidth: p.groupWidth, bottleneck: b });
  }
  // Make the bottleneck width a multiple of the group width (torchvision _adjust_widths_groups_compatibilty).
  return stages.map((s) => {
    const wBot = Math.trunc(s.width * s.bottleneck);
    const g = Math.min(s.groupWidth, wBot);
    const wBotAdj = makeDivisible(wBot, g);
    return { ...s, groupWidth: g, width: Math.trunc(wBotAdj / s.bottleneck) };
  });
}

/** Gamma of the last BN of each residual branch: keeps the residual sum's variance bounded. */
const RESIDUAL_GAMMA = 0.25;

function buildRegNet(name: string, p: RegNetParams, opts: ZooBuildOptions) {
  const n = new Net(name, opts);
  let x = n.input([3, 224, 224]);
  x = n.convBnAct(x, "stem", { cin: 3, cout: 32, k: 3, stride: 2 }, "relu");
  let cin = 32;
  regnetStages(p).forEach((s, si) => {
    for (let bi = 0; bi < s.depth; bi++) {
      const pre = `trunk_output.block${si + 1}.block${si + 1}-${bi}`;
      const stride = bi === 0 ? 2 : 1;
      const wb = Math.round(s.width * s.bottleneck);
      const groups = wb / s.groupWidth;
      let y = n.convBnAct(x, `${pre}.f.a`, { cin, cout: wb, k: 1 }, "relu");
      y = n.convBnAct(y, `${pre}.f.b`, { cin: wb, cout: wb, k: 3, stride, groups }, "relu");
      y = n.conv(y, `${pre}.f.c.conv`, { cin: wb, cout: s.width, k: 1, bias: false });
      y = n.bn(y, `${pre}.f.c.bn`, s.width, { gamma: RESIDUAL_GAMMA });
      let shortcut = x;
      if (cin !== s.width || stride !== 1) {
        shortcut = n.conv(x, `${pre}.proj.conv`, { cin, cout: s.width, k: 1, stride, bias: false });
        shortcut = n.bn(shortcut, `${pre}.proj.bn`, s.width);
      }
      x = n.act(n.add(shortcut, y, `${pre}.add`), "relu", pre);
      cin = s.width;
    }
  });
  x = n.globalPoolFlatten(x);
  n.linear(x, "fc", cin, 1000);
  return n.finish([1000]);
}

const X_400MF: RegNetParams = { depth: 22, w0: 24, wa: 24.48, wm: 2.54, groupWidth: 16 };

/** torchvision RegNetX-400MF: stem, four stages of grouped-conv residual bottlenecks (no SE), pool, FC. */
export const regnet_x_400mf: ZooEntry = {
  info: {
    name: "regnet_x_400mf",
    description: "RegNetX-400MF (grouped bottlenecks, group width 16, 224x224)",
    inputShape: [1, 3, 224, 224],
    outputShape: [1, 1000],
    params: 5_495_976,
    gmacs: 0.41,
    reference: "torchvision.models.regnet_x_400mf (IMAGENET1K_V1)",
  },
  build: (opts: ZooBuildOptions = {}) => buildRegNet("regnet_x_400mf", X_400MF, opts),
};
