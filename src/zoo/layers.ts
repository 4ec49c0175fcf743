import type { ModelProto } from "onnx-buf";
import { GraphBuilder } from "../onnx/builder.js";

/** Options every zoo builder accepts. */
export interface ZooBuildOptions {
  /** Seed of the pseudo-random weights; the same seed gives byte-identical models. Default 1. */
  seed?: number;
  /** Batch size of the input and output (a fixed dimension). Default 1. */
  batch?: number;
}

/** Activation applied after a convolution or linear layer. */
export type Activation = "relu" | "relu6" | "silu" | "sigmoid" | "hardswish" | "hardsigmoid" | "none";

/** A 2-D convolution's hyper-parameters (square kernels, symmetric padding). */
export interface ConvSpec {
  cin: number;
  cout: number;
  /** Kernel size in pixels. */
  k: number;
  stride?: number;
  /** Padding on every side; default `(k - 1) / 2` rounded down ("same" for odd kernels at stride 1). */
  pad?: number;
  groups?: number;
  /** Add a bias input (torchvision: false when a BatchNormalization follows). Default true. */
  bias?: boolean;
}

/** Options of a BatchNormalization layer. */
export interface BnSpec {
  /** Epsilon (torchvision default 1e-5; EfficientNet and GoogLeNet use 1e-3). */
  eps?: number;
  /** Constant value of gamma (scale); default 1. Residual branches use a smaller one to keep activations bounded. */
  gamma?: number;
}

/**
 * A layer vocabulary over {@link GraphBuilder} for the model zoo: nodes and weights are named after their
 * torchvision module path (`layer1.0.conv1`, `layer1.0.conv1.weight`), the graph input is `input`
 * ([batch, C, H, W] float32) and the network's last node writes `output`.
 */
export class Net {
  readonly g: GraphBuilder;
  readonly batch: number;
  private readonly shared = new Map<string, string>();

  constructor(name: string, opts: ZooBuildOptions = {}) {
    this.g = new GraphBuilder(name, { opset: 17, seed: opts.seed ?? 1 });
    this.batch = opts.batch ?? 1;
  }

  /** Declares the graph input `input` of shape [batch, ...chw] and returns its name. */
  input(chw: readonly number[]): string {
    return this.g.input("input", "float32", [this.batch, ...chw]);
  }

  /**
   * Renames the last node's output to `output`, declares it as the graph output of shape [batch, ...rest] and
   * returns the finished model. (GraphBuilder names values after their node, so the rename happens here.)
   */
  finish(outShapeWithoutBatch: readonly number[]): ModelProto {
    const last = this.g.nodes[this.g.nodes.length - 1];
    // Nodes are appended in topological order, so nothing reads the last node's output yet.
    if (this.g.fresh("output") !== "output") throw new Error(`${this.g.name}: the name 'output' is taken`);
    last.output[0] = "output";
    this.g.output("output", "float32", [this.batch, ...outShapeWithoutBatch]);
    return this.g.toModel();
  }

  /**
   * Declares several existing tensors as the graph outputs, in order, and returns the finished model: for
   * networks with more than one head (detectors, encoders returning hidden states and a pooled vector).
   */
  finishOutputs(outputs: ReadonlyArray<{ name: string; shape: readonly number[] }>): ModelProto {
    for (const o of outputs) this.g.output(o.name, "float32", o.shape);
    return this.g.toModel();
  }

  /** A scalar float32 constant shared by every node that reads it. */
  scalar(value: number): string {
    const key = `f${value}`;
    let name = this.shared.get(key);
    if (name === undefined) {
      name = this.g.constant(`const_${value}`, "float32", [], Float32Array.of(value));
      this.shared.set(key, name);
    }
    return name;
  }

  /** An int64 constant (shapes, axes, indices) shared by every node that reads it. */
  int64s(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `i${dims.join("x")}:${values.join(",")}`;
    let name = this.shared.get(key);
    if (name === undefined) {
      name = this.g.ints(`shape_${values.join("_") || "scalar"}`, values, dims);
      this.shared.set(key, name);
    }
    return name;
  }

  /** Conv with a He-initialized weight [cout, cin/groups, k, k] and an optional small bias. */
  conv(x: string, name: string, s: ConvSpec): string {
    const stride = s.stride ?? 1;
    const pad = s.pad ?? Math.floor((s.k - 1) / 2);
    const groups = s.groups ?? 1;
    const w = this.g.weight(`${name}.weight`, [s.cout, s.cin / groups, s.k, s.k], "he");
    const inputs = [x, w];
    if (s.bias ?? true) inputs.push(this.bias(`${name}.bias`, s.cout));
    return this.g.node(
      "Conv",
      inputs,
      {
        kernel_shape: [s.k, s.k],
        strides: [stride, stride],
        pads: [pad, pad, pad, pad],
        dilations: [1, 1],
        group: groups,
      },
      name,
    );
  }

  /** ConvTranspose (kernel k, stride k: exact upsampling by k) with weight [cin, cout, k, k] and a bias. */
  convTranspose(x: string, name: string, cin: number, cout: number, k: number): string {
    // The weight's fan-in per output pixel is cin (each output pixel sees one input pixel at stride = k).
    const bound = Math.sqrt(6 / cin);
    const w = this.g.weight(`${name}.weight`, [cin, cout, k, k], { uniform: [-bound, bound] });
    const b = this.bias(`${name}.bias`, cout);
    return this.g.node("ConvTranspose", [x, w, b], { kernel_shape: [k, k], strides: [k, k] }, name);
  }

  /** A bias vector, uniform in [-0.05, 0.05]: small, so it never dominates He-scaled activations. */
  bias(name: string, n: number): string {
    return this.g.weight(name, [n], { uniform: [-0.05, 0.05] });
  }

  /** Inference-mode BatchNormalization with its four tensors (gamma, beta=0, running mean=0, var=1). */
  bn(x: string, name: string, c: number, s: BnSpec = {}): string {
    const gamma = s.gamma ?? 1;
    const scale = this.g.weight(`${name}.weight`, [c], gamma === 1 ? "ones" : { uniform: [gamma, gamma] });
    const beta = this.g.weight(`${name}.bias`, [c], "zeros");
    const mean = this.g.weight(`${name}.running_mean`, [c], "zeros");
    const varr = this.g.weight(`${name}.running_var`, [c], "ones");
    return this.g.node("BatchNormalization", [x, scale, beta, mean, varr], { epsilon: s.eps ?? 1e-5 }, name);
  }

  /** Applies an activation (none returns `x`). */
  act(x: string, a: Activation, name: string): string {
    switch (a) {
      case "none":
        return x;
      case "relu":
        return this.g.node("Relu", [x], {}, `${name}.relu`);
      case "relu6":
        return this.g.node("Clip", [x, this.scalar(0), this.scalar(6)], {}, `${name}.relu6`);
      case "sigmoid":
        return this.g.node("Sigmoid", [x], {}, `${name}.sigmoid`);
      case "hardswish":
        return this.g.node("HardSwish", [x], {}, `${name}.hardswish`);
      case "hardsigmoid":
        // torch's Hardsigmoid is relu6(x + 3) / 6; ONNX's default alpha is 0.2, so both are given.
        return this.g.node(
          "HardSigmoid",
          [x],
          { alpha: { float: 1 / 6 }, beta: { float: 0.5 } },
          `${name}.hardsigmoid`,
        );
      case "silu": {
        // SiLU(x) = x * sigmoid(x): opset 17 has no SiLU/Swish op.
        const s = this.g.node("Sigmoid", [x], {}, `${name}.silu.sigmoid`);
        return this.g.node("Mul", [x, s], {}, `${name}.silu`);
      }
    }
  }

  /** Conv (no bias) + BatchNormalization + activation, as torchvision's Conv2dNormActivation. */
  convBnAct(x: string, name: string, s: Omit<ConvSpec, "bias">, act: Activation, bn: BnSpec = {}): string {
    const c = this.conv(x, `${name}.conv`, { ...s, bias: false });
    const b = this.bn(c, `${name}.bn`, s.cout, bn);
    return this.act(b, act, name);
  }

  /**
   * Squeeze-and-excitation: x * gate(fc2(act(fc1(GlobalAveragePool(x))))), fc as 1x1 convs with bias; the
   * gate is a sigmoid (EfficientNet) or a hard sigmoid (MobileNetV3).
   */
  squeezeExcite(
    x: string,
    name: string,
    c: number,
    squeeze: number,
    act: Activation,
    gate: Activation = "sigmoid",
  ): string {
    const p = this.g.node("GlobalAveragePool", [x], {}, `${name}.avgpool`);
    const f1 = this.act(this.conv(p, `${name}.fc1`, { cin: c, cout: squeeze, k: 1 }), act, `${name}.fc1`);
    const f2 = this.conv(f1, `${name}.fc2`, { cin: squeeze, cout: c, k: 1 });
    const s = this.act(f2, gate, `${name}.fc2`);
    return this.g.node("Mul", [x, s], {}, `${name}.scale`);
  }

  /** MaxPool with a square kernel. */
  maxPool(x: string, name: string, k: number, stride: number, pad = 0, ceil = false): string {
    return this.g.node(
      "MaxPool",
      [x],
      {
        kernel_shape: [k, k],
        strides: [stride, stride],
        pads: [pad, pad, pad, pad],
        ceil_mode: ceil ? 1 : 0,
      },
      name,
    );
  }

  /** AveragePool with a square kernel, no padding. */
  avgPool(x: string, name: string, k: number, stride: number): string {
    return this.g.node("AveragePool", [x], { kernel_shape: [k, k], strides: [stride, stride] }, name);
  }

  /** GlobalAveragePool followed by Flatten to [batch, C]. */
  globalPoolFlatten(x: string, name = "avgpool"): string {
    const p = this.g.node("GlobalAveragePool", [x], {}, name);
    return this.g.node("Flatten", [p], { axis: 1 }, "flatten");
  }

  /** Fully connected layer on [batch, cin] as Gemm (weight [cout, cin], transB=1, bias), as torch exports it. */
  linear(x: string, name: string, cin: number, cout: number): string {
    const w = this.g.weight(`${name}.weight`, [cout, cin], "he");
    const b = this.bias(`${name}.bias`, cout);
    return this.g.node("Gemm", [x, w, b], { transB: 1 }, name);
  }

  /**
   * Linear layer on [..., cin] as MatMul (weight [cin, cout]) + Add (bias), as torch exports it for 3-D inputs.
   * Weights are LeCun-uniform (variance 1/cin): transformer blocks have no ReLU halving the variance.
   */
  matmulLinear(x: string, name: string, cin: number, cout: number): string {
    const bound = Math.sqrt(3 / cin);
    const w = this.g.weight(`${name}.weight`, [cin, cout], { uniform: [-bound, bound] });
    const b = this.bias(`${name}.bias`, cout);
    const m = this.g.node("MatMul", [x, w], {}, `${name}.matmul`);
    return this.g.node("Add", [m, b], {}, name);
  }

  /** LayerNormalization (opset 17) over the last axis with scale 1 and bias 0. */
  layerNorm(x: string, name: string, c: number, eps = 1e-6): string {
    const scale = this.g.weight(`${name}.weight`, [c], "ones");
    const bias = this.g.weight(`${name}.bias`, [c], "zeros");
    return this.g.node("LayerNormalization", [x, scale, bias], { axis: -1, epsilon: { float: eps } }, name);
  }

  /** Exact GELU for opsets before 20: x * 0.5 * (1 + Erf(x / sqrt(2))). */
  gelu(x: string, name: string): string {
    const d = this.g.node("Div", [x, this.scalar(Math.SQRT2)], {}, `${name}.div`);
    const e = this.g.node("Erf", [d], {}, `${name}.erf`);
    const a = this.g.node("Add", [e, this.scalar(1)], {}, `${name}.add`);
    const m = this.g.node("Mul", [x, a], {}, `${name}.mul`);
    return this.g.node("Mul", [m, this.scalar(0.5)], {}, name);
  }

  /** Elementwise Add (residual connections). */
  add(a: string, b: string, name: string): string {
    return this.g.node("Add", [a, b], {}, name);
  }

  /** Concat along the channel axis (or `axis`). */
  concat(xs: readonly string[], name: string, axis = 1): string {
    return this.g.node("Concat", xs, { axis }, name);
  }

  /** Reshape to a fixed shape. */
  reshape(x: string, shape: readonly number[], name: string): string {
    return this.g.node("Reshape", [x, this.int64s(shape)], {}, name);
  }

  /** Transpose by a permutation. */
  transpose(x: string, perm: readonly number[], name: string): string {
    return this.g.node("Transpose", [x], { perm: [...perm] }, name);
  }
}
