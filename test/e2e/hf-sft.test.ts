import { readFileSync } from "node:fs"
import * as path from "node:path"
import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import { setBackend } from "../../packages/runtime/src/backend.js"
import { decodeSafetensors } from "../../packages/runtime/src/model/safetensors.js"
import { loadHfModel } from "../../packages/runtime/src/model/hf/hf-load.js"
import { HfTokenizer, loadHfTokenizer } from "../../packages/runtime/src/model/hf/hf-tokenizer.js"
import type { Transformer } from "../../packages/runtime/src/model/transformer.js"
import { loadModel } from "../../packages/cli/src/run/context.js"
import { demonstrationSequence } from "../../packages/cli/src/run/data.js"
import { decodeRunConfig } from "../../packages/cli/src/run/RunConfig.js"
import type { Demonstration } from "../../packages/tasks/src/demonstrations.js"
import { byteTokenizer } from "../../packages/runtime/src/tokenizer.js"
import { writeHfFixture } from "../runtime/fixtures/hf-model.js"
import type { HfFixture } from "../runtime/fixtures/hf-model.js"
import { cli, tempDir } from "./helpers.js"

const demo: Demonstration = {
  problemId: "t",
  prompt: "Q: 2+3=?\n",
  turns: [
    { policyText: "<code>console.log(2+3)</code>", feedbackText: "<output>5</output>" },
    { policyText: "<answer>5</answer>", feedbackText: "" },
  ],
  text: "",
  style: "single",
  mistake: null,
}

// The fixture's ids: BOS <|endoftext|> 261, <|im_start|> 262, <|im_end|> 263; 264..271 are
// embedding rows past the tokenizer's vocabulary, which no text ever encodes to.
const [BOS, IM_START, IM_END, UNUSED] = [261, 262, 263, 270]

describe("demonstrations as training sequences", () => {
  let qwen: HfTokenizer
  beforeAll(async () => {
    qwen = await loadHfTokenizer((await writeHfFixture()).dir, { vocabSize: 272, config: { bosTokenId: BOS, eosTokenId: IM_END, padTokenId: null } })
  })

  it("use the model's tokenizer and chat template for the prompt, as the rollout does", () => {
    const seq = demonstrationSequence(demo, qwen)
    const prompt = [BOS, ...qwen.encode("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ: 2+3=?\n<|im_end|>\n<|im_start|>assistant\n")]
    const policy1 = qwen.encode("<code>console.log(2+3)</code>")
    const feedback1 = qwen.encode("<output>5</output>")
    const policy2 = qwen.encode("<answer>5</answer>")
    expect(seq.tokens).toEqual([...prompt, ...policy1, ...feedback1, ...policy2])
    expect(seq.tokens.filter((id) => id === IM_START)).toHaveLength(3)
    expect(seq.mask).toEqual([...prompt.map(() => 0), ...policy1.map(() => 1), ...feedback1.map(() => 0), ...policy2.map(() => 1)])
    expect(seq.turnIndex).toEqual([...prompt.map(() => -1), ...policy1.map(() => 0), ...feedback1.map(() => -1), ...policy2.map(() => 1)])
  })

  it("are unchanged for the byte tokenizer: BOS 256 and the prompt's bytes, no template", () => {
    const seq = demonstrationSequence(demo, byteTokenizer)
    const bytes = (text: string) => Array.from(new TextEncoder().encode(text))
    expect(seq.tokens).toEqual([256, ...bytes("Q: 2+3=?\n"), ...bytes("<code>console.log(2+3)</code><output>5</output><answer>5</answer>")])
    expect(seq.mask.filter((m) => m === 1)).toHaveLength(bytes("<code>console.log(2+3)</code><answer>5</answer>").length)
  })
})

const embeddingRow = (tensors: ReturnType<typeof decodeSafetensors>["tensors"] | HfFixture["weights"], id: number): Array<number> => {
  const table = tensors.get("model.embed_tokens.weight")
  if (table === undefined) throw new Error("no model.embed_tokens.weight")
  const D = table.shape[1] ?? 0
  return Array.from(table.data.subarray(id * D, (id + 1) * D))
}

const moved = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): number => a.reduce((worst, x, i) => Math.max(worst, Math.abs(x - (b[i] ?? NaN))), 0)

const logitsOf = (model: Transformer, tokens: ReadonlyArray<number>): Array<number> => {
  const input = tf.tensor2d([[...tokens]], [1, tokens.length], "int32")
  const out = model.logits(input)
  const values = Array.from(out.dataSync())
  tf.dispose([input, out])
  model.dispose()
  return values
}

describe("turnwise sft --set model.path=DIR", () => {
  it("trains the pretrained model on demonstrations encoded by its tokenizer; the result exports and reloads", async () => {
    const fx = await writeHfFixture({ seed: 8 })
    const out = tempDir("hf-sft")
    const result = await cli([
      "sft",
      "--steps",
      "2",
      "--batch",
      "4",
      "--lr",
      "0.01",
      "--set",
      "task.trainCount=12",
      "--set",
      `model.path=${fx.dir}`,
      "--out",
      out,
    ])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toContain(`model: ${fx.dir} (2 layers, width 16, vocabulary 272)`)
    const checkpoint = path.join(out, "checkpoints", "step-000002")
    const weights = decodeSafetensors(readFileSync(path.join(checkpoint, "model.safetensors"))).tensors
    expect(weights.get("lm_head.weight")?.shape).toEqual([272, 16])

    // An embedding row gets a gradient only when its id is an input. The HF tokenizer's BOS and
    // chat-template ids are inputs of every sequence; the byte tokenizer (ids < 259) never
    // produces them, so with it these rows would move no more than the unused row 270
    // (weight decay only).
    const shift = (id: number) => moved(embeddingRow(weights, id), embeddingRow(fx.weights, id))
    expect(shift(UNUSED)).toBeLessThan(1e-4)
    for (const id of [BOS, IM_START, IM_END]) expect(shift(id), `embedding row ${id}`).toBeGreaterThan(100 * Math.max(shift(UNUSED), 1e-7))

    // Export the fine-tuned model and load it back as a Hugging Face directory.
    const exported = path.join(out, "hf")
    const exportRun = await cli(["export", "--checkpoint", path.join(out, "checkpoints"), "--out", exported])
    expect(exportRun.code, exportRun.stderr).toBe(0)
    await setBackend("wasm")
    const tokens = [BOS, IM_START, 258, 111, 259, 260, 108, 100]
    const fromExport = logitsOf((await loadHfModel(exported)).model, tokens)
    expect(fromExport).toEqual(logitsOf(await loadModel(decodeRunConfig({ model: { path: fx.dir, init: path.join(out, "checkpoints") } })), tokens))
    expect(moved(fromExport, logitsOf((await loadHfModel(fx.dir)).model, tokens))).toBeGreaterThan(1e-2)
  }, 180_000)
})
