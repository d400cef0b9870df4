import { existsSync, readFileSync } from "node:fs"
import * as path from "node:path"
import * as tf from "@tensorflow/tfjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { setBackend } from "../../packages/runtime/src/backend.js"
import { decodeSafetensors } from "../../packages/runtime/src/model/safetensors.js"
import { loadHfModel } from "../../packages/runtime/src/model/hf/hf-load.js"
import type { Transformer } from "../../packages/runtime/src/model/transformer.js"
import { loadModel } from "../../packages/cli/src/run/context.js"
import { decodeRunConfig } from "../../packages/cli/src/run/RunConfig.js"
import { writeHfFixture } from "../runtime/fixtures/hf-model.js"
import type { HfFixture } from "../runtime/fixtures/hf-model.js"
import { cli, tempDir, tinyRun } from "./helpers.js"

// "hell" "o" " w" "or" "l" "d" after the fixture's BOS, then <|im_start|>.
const TOKENS = [261, 258, 111, 259, 260, 108, 100, 262]

const logitsOf = (model: Transformer): Array<number> => {
  const input = tf.tensor2d([TOKENS], [1, TOKENS.length], "int32")
  const out = model.logits(input)
  const values = Array.from(out.dataSync())
  tf.dispose([input, out])
  model.dispose()
  return values
}

const maxAbsDiff = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): number =>
  a.length !== b.length ? Infinity : a.reduce((worst, x, i) => Math.max(worst, Math.abs(x - (b[i] ?? NaN))), 0)

describe("turnwise export", () => {
  let fx: HfFixture
  let checkpoints: string
  let trained: Array<number>
  let original: Array<number>

  beforeAll(async () => {
    fx = await writeHfFixture({ seed: 6 })
    const run = tempDir("hf-export-run")
    // A random model earns the same reward on every trajectory, so the step's gradient is
    // ~0 and only weight decay (lr x decay) moves the weights: a large lr makes that move
    // visible in the logits (~1e-4). turnwise sft's test exports a model moved by real gradients.
    const result = await cli([
      "train",
      "recipes/gtpo.ts",
      ...tinyRun,
      "--set",
      "train.steps=1",
      "--set",
      "optimizer.lr=0.01",
      "--set",
      `model.path=${fx.dir}`,
      "--out",
      run,
    ])
    expect(result.code, result.stderr).toBe(0)
    checkpoints = path.join(run, "checkpoints")
    await setBackend("wasm")
    trained = logitsOf(await loadModel(decodeRunConfig({ model: { path: fx.dir, init: checkpoints } })))
    original = logitsOf((await loadHfModel(fx.dir)).model)
  }, 120_000)

  afterAll(async () => {
    await setBackend("wasm")
  })

  it("writes the trained checkpoint in the Hugging Face layout; loading it gives the checkpoint's logits", async () => {
    const out = path.join(tempDir("hf-export"), "tuned")
    const result = await cli(["export", "--checkpoint", checkpoints, "--out", out, "--set", `model.path=${fx.dir}`])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toContain(
      `exported ${checkpoints} to ${out}: config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json`,
    )
    const exported = logitsOf((await loadHfModel(out)).model)
    expect(exported).toEqual(trained)
    // The step moved the weights, so equality with the checkpoint is not equality with the
    // fixture: exporting the source's weights instead would fail the toEqual above.
    expect(maxAbsDiff(trained, original)).toBeGreaterThan(1e-5)
    expect(maxAbsDiff(exported, original)).toBeGreaterThan(1e-5)
    expect(readFileSync(path.join(out, "tokenizer.json"), "utf8")).toBe(readFileSync(path.join(fx.dir, "tokenizer.json"), "utf8"))
    expect(JSON.parse(readFileSync(path.join(out, "config.json"), "utf8"))).toEqual({ ...fx.config, torch_dtype: "float32" })
  })

  it("takes the source model from the checkpoint when model.path is not given, and writes bfloat16 on request", async () => {
    const out = path.join(tempDir("hf-export"), "bf16")
    const result = await cli(["export", "--checkpoint", checkpoints, "--out", out, "--dtype", "bfloat16"])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toContain(`source model: ${fx.dir} (recorded in the checkpoint`)
    expect(existsSync(path.join(out, "tokenizer.json"))).toBe(true)
    const stored = decodeSafetensors(readFileSync(path.join(out, "model.safetensors"))).tensors
    expect(stored.get("lm_head.weight")?.dtype).toBe("BF16")
    expect((JSON.parse(readFileSync(path.join(out, "config.json"), "utf8")) as { torch_dtype: string }).torch_dtype).toBe("bfloat16")
    // bfloat16 keeps 8 bits of mantissa: close to the trained logits, but rounded.
    const exported = logitsOf((await loadHfModel(out)).model)
    expect(maxAbsDiff(exported, trained)).toBeLessThan(0.05)
    expect(maxAbsDiff(exported, trained)).toBeGreaterThan(0)
  })

  it("is listed in the help, and refuses a missing --out, an unknown dtype and a checkpoint that is not there, by name", async () => {
    expect((await cli(["--help"])).stdout).toContain("turnwise export --checkpoint dir --out dir [--set model.path=src] [--dtype float32|bfloat16]")
    const noOut = await cli(["export", "--checkpoint", checkpoints])
    expect(noOut.code).toBe(2)
    expect(noOut.stderr).toContain("export needs --checkpoint DIR and --out DIR")
    const badDtype = await cli(["export", "--checkpoint", checkpoints, "--out", tempDir("hf-export"), "--dtype", "float16"])
    expect(badDtype.code).toBe(2)
    expect(badDtype.stderr).toContain("--dtype must be float32 or bfloat16, got \"float16\"")
    const missing = await cli(["export", "--checkpoint", "/nonexistent/run", "--out", tempDir("hf-export")])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/\/nonexistent\/run\/state\.json: not found/)
  })
})
