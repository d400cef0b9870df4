/**
 * The served endpoint through the official `openai` client: a small preset model is
 * first taught (a few dozen supervised steps) to answer "add 2 and 3" with a call of the
 * `add` tool and then with "5", so the tool-call path runs on a real policy.
 */
import * as tf from "@tensorflow/tfjs"
import OpenAI from "openai"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Recipe } from "@turnwise/dsl"
import { recipes } from "@turnwise/recipes"
import { Rng } from "@turnwise/core"
import { byteTokenizer, constantSchedule, createSupervisedTrainer } from "@turnwise/runtime"
import { byteChatFormat, runServe, serve, serveOptionsFromSets } from "@turnwise/cli"
import type { ChatMessage, ChatTool, EpisodeView, ServeHandle } from "@turnwise/cli"
import { writeHfFixture } from "../runtime/fixtures/hf-model.js"

const addTool = {
  type: "function" as const,
  function: { name: "add", description: "Add two numbers", parameters: { type: "object", properties: { a: { type: "number" }, b: { type: "number" } } } },
}
const tools: Array<ChatTool> = [{ name: "add", description: "Add two numbers", parameters: addTool.function.parameters }]
const question = "add 2 and 3"
const call = `<call name="add">{"a":2,"b":3}</call>`
const msg = (role: ChatMessage["role"], content: string): ChatMessage => ({ role, content, toolCalls: [], toolCallId: null })

let server: ServeHandle
let client: OpenAI
const temperature = 0.5

/** Supervised steps until the model writes the call, then "5" after the tool's output. */
const teach = async (handle: ServeHandle) => {
  const prompt = [byteTokenizer.bos, ...byteTokenizer.encode(byteChatFormat.prompt([msg("user", question)], tools))]
  const first = byteTokenizer.encode(call)
  const observation = byteTokenizer.encode(`<|end|>\n<|tool|><output>5</output><|end|>\n<|assistant|>`)
  const second = byteTokenizer.encode("5<|end|>")
  const tokens = [...prompt, ...first, ...observation, ...second]
  const mask = [...prompt.map(() => 0), ...first.map(() => 1), ...observation.map(() => 0), ...second.map(() => 1)]
  const sequence = { tokens, mask, oldLogprobs: tokens.map(() => 0), advantages: tokens.map(() => 0), turnIndex: tokens.map(() => -1) }
  const sft = createSupervisedTrainer(handle.runtime.model, {
    schedule: constantSchedule(3e-3),
    microBatchSize: 4,
    rng: Rng.fromSeed(1),
    padId: byteTokenizer.pad,
  })
  for (let step = 0; step < 150; step++) {
    const report = await sft.step([sequence])
    if (report.accuracy === 1 && report.crossEntropy < 0.05) break
  }
  sft.dispose()
}

const episodeHeaders = (id: string) => ({ headers: { "x-turnwise-episode": id, "x-turnwise-group": "add-2-3" } })

interface TurnwiseField {
  readonly policy_version: number
  readonly token_ids: ReadonlyArray<number>
  readonly logprobs: ReadonlyArray<number>
  readonly episode: { readonly id: string; readonly branch: number; readonly turn: number; readonly mismatch: string | null } | null
}
const turnwiseOf = (value: unknown): TurnwiseField => (value as { turnwise: TurnwiseField }).turnwise

/** Run the agent loop of one episode: ask, run the tool call, send its result, read the answer. */
const runEpisode = async (id: string) => {
  const messages: Array<OpenAI.ChatCompletionMessageParam> = [{ role: "user", content: question }]
  const first = await client.chat.completions.create({ model: "turnwise", messages, tools: [addTool] }, episodeHeaders(id))
  const reply = first.choices[0]!.message
  messages.push(reply as OpenAI.ChatCompletionMessageParam)
  const calls = reply.tool_calls ?? []
  for (const c of calls) {
    if (c.type !== "function") continue
    const args = JSON.parse(c.function.arguments) as { a: number; b: number }
    messages.push({ role: "tool", tool_call_id: c.id, content: String(args.a + args.b) })
  }
  const second = calls.length === 0 ? null : await client.chat.completions.create({ model: "turnwise", messages, tools: [addTool] }, episodeHeaders(id))
  return { first, second, messages }
}

describe("serve: an OpenAI-compatible endpoint over the training policy", () => {
  beforeAll(async () => {
    const recipe = Recipe.derive(recipes.grpo!, { name: "grpo-served", rollout: { temperature }, optimizer: { lr: 1e-3 } })
    server = await serve({ port: 0, apiKey: "test-key", model: { preset: "compact", seed: 3 }, recipe, maxNewTokens: 40 })
    client = new OpenAI({ baseURL: server.url, apiKey: "test-key", maxRetries: 0 })
    await teach(server)
  }, 300_000)

  afterAll(async () => {
    await server?.close()
  })

  it("lists the served model and refuses a wrong API key with a 401 error body", async () => {
    const models = await client.models.list()
    expect(models.data.map((m) => m.id)).toEqual(["turnwise"])
    const stranger = new OpenAI({ baseURL: server.url, apiKey: "wrong", maxRetries: 0 })
    const error = await stranger.models.list().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError)
    expect((error as InstanceType<typeof OpenAI.AuthenticationError>).error).toMatchObject({ type: "authentication_error", code: "invalid_api_key" })
  })

  it("streams the same tokens and content as a whole reply with the same seed", async () => {
    const request = { model: "turnwise", messages: [{ role: "user" as const, content: "Say something." }], seed: 11, temperature: 1, max_tokens: 24 }
    const whole = await client.chat.completions.create(request)
    const stream = await client.chat.completions.create({ ...request, stream: true })
    let content = ""
    let last: unknown = null
    let chunks = 0
    for await (const chunk of stream) {
      chunks += 1
      content += chunk.choices[0]?.delta.content ?? ""
      if (chunk.choices[0]?.finish_reason !== null) last = chunk
    }
    expect(chunks).toBeGreaterThan(2)
    expect(turnwiseOf(last).token_ids).toEqual(turnwiseOf(whole).token_ids)
    expect(turnwiseOf(whole).token_ids.length).toBeGreaterThan(0)
    expect(content).toBe(whole.choices[0]!.message.content)
  })

  it("returns the taught tool call in OpenAI's tool_calls format, streamed too", async () => {
    const request = { model: "turnwise", messages: [{ role: "user" as const, content: question }], tools: [addTool], temperature: 0 }
    const whole = await client.chat.completions.create(request)
    const choice = whole.choices[0]!
    expect(choice.finish_reason).toBe("tool_calls")
    expect(choice.message.content).toBeNull()
    const toolCall = choice.message.tool_calls?.[0]
    expect(toolCall?.type).toBe("function")
    expect(toolCall?.type === "function" ? [toolCall.function.name, JSON.parse(toolCall.function.arguments)] : null).toEqual(["add", { a: 2, b: 3 }])
    const stream = await client.chat.completions.create({ ...request, stream: true })
    const streamedCalls: Array<unknown> = []
    let finish: string | null = null
    for await (const chunk of stream) {
      streamedCalls.push(...(chunk.choices[0]?.delta.tool_calls ?? []))
      finish = chunk.choices[0]?.finish_reason ?? finish
    }
    expect(finish).toBe("tool_calls")
    expect(streamedCalls).toMatchObject([{ index: 0, type: "function", function: { name: "add", arguments: `{"a":2,"b":3}` } }])
  })

  it("records a multi-turn episode with the sampled token ids, reused without re-tokenising, and observation tokens after each turn", async () => {
    const { first, second } = await runEpisode("exact-1")
    expect(second).not.toBeNull()
    expect(second!.choices[0]!.message.content).toBe("5")
    const episode = await client.get<EpisodeView>("/episodes/exact-1")
    expect(episode.branches).toHaveLength(1)
    const [branch] = episode.branches
    expect(branch!.turns.map((t) => t.policyTokens)).toEqual([turnwiseOf(first).token_ids, turnwiseOf(second).token_ids])
    expect(branch!.turns[0]!.logprobs).toEqual(turnwiseOf(first).logprobs)
    // The observation is the closing of the call turn, the tool message and the opened assistant turn.
    expect(branch!.turns[0]!.feedbackTokens).toEqual(byteTokenizer.encode(`<|end|>\n<|tool|><output>5</output><|end|>\n<|assistant|>`))
    // The second turn was sampled after exactly the recorded tokens.
    expect(second!.usage?.prompt_tokens).toBe(branch!.promptTokens.length + branch!.turns[0]!.policyTokens.length + branch!.turns[0]!.feedbackTokens.length)
    // The recorded log-probs are the model's own at the recipe's temperature.
    const tokens = [...branch!.promptTokens, ...branch!.turns.flatMap((t) => [...t.policyTokens, ...t.feedbackTokens])]
    const rescored = tf.tidy(() => server.runtime.model.tokenLogprobs(tf.tensor2d([tokens], [1, tokens.length], "int32"), temperature).arraySync()[0]!)
    const at = branch!.promptTokens.length
    branch!.turns[0]!.logprobs.forEach((lp, k) => expect(lp).toBeCloseTo(rescored[at + k]!, 3))
  })

  it("records a new branch, and says why, when a request does not extend the episode", async () => {
    const { messages } = await runEpisode("branching")
    const edited = messages.slice(0, 2).concat([{
      role: "tool",
      tool_call_id: (messages[1] as { tool_calls: Array<{ id: string }> }).tool_calls[0]!.id,
      content: "6",
    }])
    edited[0] = { role: "user", content: "add 2 and 3, please" }
    const reply = await client.chat.completions.create({ model: "turnwise", messages: edited, tools: [addTool] }, episodeHeaders("branching"))
    expect(turnwiseOf(reply).episode).toMatchObject({ id: "branching", branch: 1, turn: 0 })
    expect(turnwiseOf(reply).episode?.mismatch).toContain("messages[0]")
    const episode = await client.get<EpisodeView>("/episodes/branching")
    expect(episode.branches).toHaveLength(2)
    expect(episode.branches[1]!.turns[0]!.policyTokens).toEqual(turnwiseOf(reply).token_ids)
  })

  it("trains on rewarded episodes and then serves the new policy version", async () => {
    const probe = { model: "turnwise", messages: [{ role: "user" as const, content: question }], tools: [addTool], seed: 5, temperature: 1 }
    const before = await client.chat.completions.create(probe).withResponse()
    expect(before.response.headers.get("x-turnwise-policy-version")).toBe("0")
    for (const [id, reward] of [["g-1", 1], ["g-2", 0], ["g-3", 1], ["g-4", 0]] as const) {
      await runEpisode(id)
      await client.post(`/episodes/${id}/reward`, { body: { reward } })
    }
    const trained = await client.post<{ policy_version: number; episodes: number; groups: number; skipped: boolean }>("/train")
    expect(trained).toMatchObject({ policy_version: 1, episodes: 4, groups: 1, skipped: false })
    const after = await client.chat.completions.create(probe).withResponse()
    expect(after.response.headers.get("x-turnwise-policy-version")).toBe("1")
    expect(turnwiseOf(after.data).policy_version).toBe(1)
    // Same seed, new weights: the first token's log-prob moved.
    expect(turnwiseOf(after.data).logprobs[0]).not.toBe(turnwiseOf(before.data).logprobs[0])
    // A trained episode takes no more rewards, and there is nothing left to train on.
    await expect(client.post("/episodes/g-1/reward", { body: { reward: 1 } })).rejects.toMatchObject({ status: 409 })
    await expect(client.post("/train")).rejects.toMatchObject({ status: 409, error: { code: "nothing_to_train" } })
  })

  it("refuses bad requests with OpenAI error bodies and 4xx statuses, and keeps serving", async () => {
    const refused = async (promise: Promise<unknown>) => {
      const error = await promise.catch((e: unknown) => e)
      expect(error).toBeInstanceOf(OpenAI.APIError)
      const e = error as InstanceType<typeof OpenAI.APIError>
      expect(Object.keys(e.error as object).sort()).toEqual(["code", "message", "param", "type"])
      return { status: e.status, ...(e.error as { code: string; param: string | null; type: string }) }
    }
    expect(await refused(client.post("/episodes/no-such-episode/reward", { body: { reward: 1 } }))).toMatchObject({ status: 404, code: "episode_not_found" })
    expect(await refused(client.get("/episodes/no-such-episode"))).toMatchObject({ status: 404, code: "episode_not_found" })
    const robot = [{ role: "robot", content: "beep" }] as unknown as Array<OpenAI.ChatCompletionMessageParam>
    expect(await refused(client.chat.completions.create({ model: "turnwise", messages: robot }))).toMatchObject({ status: 400, type: "invalid_request_error" })
    expect(await refused(client.chat.completions.create({ model: "turnwise", messages: [] }))).toMatchObject({ status: 400, param: "messages" })
    const orphan: Array<OpenAI.ChatCompletionMessageParam> = [{ role: "user", content: question }, {
      role: "tool",
      tool_call_id: "call_never_made",
      content: "5",
    }]
    expect(await refused(client.chat.completions.create({ model: "turnwise", messages: orphan, tools: [addTool] }))).toMatchObject({
      status: 400,
      code: "unknown_tool_call",
      param: "messages[1].tool_call_id",
    })
    const huge = [{ role: "user" as const, content: "x".repeat(600) }]
    expect(await refused(client.chat.completions.create({ model: "turnwise", messages: huge }))).toMatchObject({ status: 400, code: "context_length_exceeded" })
    expect(await refused(client.post("/episodes/exact-1/reward", { body: { reward: [1, 2, 3] } }))).toMatchObject({ status: 400, code: "invalid_reward" })
    const ok = await client.chat.completions.create({ model: "turnwise", messages: [{ role: "user", content: "still there?" }], max_tokens: 4 })
    expect(ok.choices[0]!.message.role).toBe("assistant")
  })
})

describe("serve: a Hugging Face model's chat template", () => {
  let hf: ServeHandle
  let hfClient: OpenAI

  beforeAll(async () => {
    const fixture = await writeHfFixture()
    hf = await serve({ port: 0, model: { path: fixture.dir }, recipe: "grpo", maxNewTokens: 6 })
    hfClient = new OpenAI({ baseURL: hf.url, apiKey: "unused", maxRetries: 0 })
  }, 120_000)

  afterAll(async () => {
    await hf?.close()
  })

  it("renders the conversation with the template and extends an episode by the template's own continuation", async () => {
    const messages: Array<OpenAI.ChatCompletionMessageParam> = [{ role: "user", content: "Hi" }]
    const first = await hfClient.chat.completions.create({ model: "turnwise", messages }, { headers: { "x-turnwise-episode": "hf-1" } })
    messages.push(first.choices[0]!.message as OpenAI.ChatCompletionMessageParam, { role: "user", content: "And now?" })
    const second = await hfClient.chat.completions.create({ model: "turnwise", messages }, { headers: { "x-turnwise-episode": "hf-1" } })
    const episode = await hfClient.get<EpisodeView>("/episodes/hf-1")
    expect(episode.branches).toHaveLength(1)
    const [branch] = episode.branches
    const tokenizer = hf.runtime.tokenizer
    // The fixture's ChatML template adds a system message before a first user message.
    expect(branch!.promptTokens).toEqual([
      tokenizer.bos,
      ...tokenizer.encode("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
    ])
    const sampled = turnwiseOf(first).token_ids
    expect(branch!.turns.map((t) => t.policyTokens)).toEqual([sampled, turnwiseOf(second).token_ids])
    const closing = sampled[sampled.length - 1] === tokenizer.eos ? "" : "<|im_end|>"
    expect(branch!.turns[0]!.feedbackTokens).toEqual(tokenizer.encode(`${closing}\n<|im_start|>user\nAnd now?<|im_end|>\n<|im_start|>assistant\n`))
  })
})

describe("runServe (the `turnwise serve` command)", () => {
  it("serves with the decoded settings until aborted, then closes", async () => {
    const lines: Array<string> = []
    const io = { log: (line: string) => void lines.push(line), stdout: () => {}, readStdin: async () => "", tty: false }
    const abort = new AbortController()
    const options = serveOptionsFromSets(["port=0", "model.preset=tiny", "apiKey=sesame", "modelName=mini", "maxNewTokens=4"])
    const done = runServe(options, io, abort.signal)
    for (let tries = 0; tries < 600 && !lines.some((l) => l.startsWith("serving")); tries++) await new Promise((r) => setTimeout(r, 100))
    const url = /at (http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(lines.join("\n"))?.[1]
    expect(url).toBeDefined()
    const mini = new OpenAI({ baseURL: url, apiKey: "sesame", maxRetries: 0 })
    const reply = await mini.chat.completions.create({ model: "mini", messages: [{ role: "user", content: "hi" }] })
    expect(reply.usage?.completion_tokens).toBeLessThanOrEqual(4)
    abort.abort()
    expect(await done).toBe(0)
    await expect(mini.models.list()).rejects.toBeInstanceOf(OpenAI.APIConnectionError)
  }, 120_000)
})

describe("examples/openai-agent.ts", () => {
  it("runs its agent through episodes, posts rewards and trains a new policy version each round", async () => {
    const { main } = await import("../../examples/openai-agent.js")
    const rounds = await main({ rounds: 2, tasksPerRound: 1, groupSize: 2, demonstrations: 2, sftSteps: 3 })
    expect(rounds.map((r) => r.round)).toEqual([0, 1])
    for (const r of rounds) expect(r.successRate).toBeGreaterThanOrEqual(0)
    // Each round's step trained (GRPO skips nothing without a filter), so the version counts the rounds.
    expect(rounds.map((r) => r.policyVersion)).toEqual([1, 2])
  }, 300_000)
})
