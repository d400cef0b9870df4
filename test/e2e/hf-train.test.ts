import { readFileSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { decodeSafetensors } from "../../packages/runtime/src/model/safetensors.js"
import { writeHfFixture } from "../runtime/fixtures/hf-model.js"
import { cli, tempDir, tinyRun } from "./helpers.js"

describe("turnwise train --set model.path=DIR", () => {
  it("trains a pretrained Hugging Face model for a step and checkpoints its weights under their HF names", async () => {
    const fx = await writeHfFixture({ seed: 4 })
    const out = tempDir("hf-train")
    const result = await cli(["train", "recipes/gtpo.ts", ...tinyRun, "--set", "train.steps=1", "--set", `model.path=${fx.dir}`, "--out", out])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toContain(`model: ${fx.dir} (2 layers, width 16, vocabulary 272)`)
    const steps = readFileSync(path.join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { step: number; phase: string })
      .filter((r) => r.phase === "train")
      .map((r) => r.step)
    expect(steps).toEqual([1])
    const checkpoint = path.join(out, "checkpoints", "step-000001")
    const weights = decodeSafetensors(readFileSync(path.join(checkpoint, "model.safetensors"))).tensors
    expect(weights.get("lm_head.weight")?.shape).toEqual([272, 16])
    expect(weights.get("model.layers.1.self_attn.q_proj.bias")?.shape).toEqual([16])
    const state = JSON.parse(readFileSync(path.join(checkpoint, "state.json"), "utf8")) as { config: { run: { model: { path: string } } } }
    expect(state.config.run.model.path).toBe(fx.dir)

    // eval rebuilds the pretrained model and tokenizer from the path the checkpoint recorded.
    const evaluated = await cli(["eval", "--checkpoint", path.join(out, "checkpoints"), "--set", "task.evalCount=2"])
    expect(evaluated.code, evaluated.stderr).toBe(0)
    expect(evaluated.stderr).toContain(`model: ${fx.dir} (2 layers, width 16, vocabulary 272)`)
    expect((JSON.parse(evaluated.stdout) as { problems: number }).problems).toBe(2)
  }, 60_000)
})
