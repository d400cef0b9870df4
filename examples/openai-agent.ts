/**
 * Train an agent you already have: the agent below is written only against the
 * official `openai` client (a chat loop with its own `add` tool), and Turnwise trains
 * the model behind it.
 *
 * The trainer side serves a small built-in model with `serve`, teaches it the tool
 * format with a few supervised steps on demonstrations (a random model never calls a
 * tool), then runs rounds: the agent answers each toy question G times (one episode
 * each, named by a header), each episode gets reward 1 when the answer is right (0.5
 * when it at least called `add` with the question's numbers), and one GRPO step trains
 * on the round's episodes. Every reply says which policy version
 * wrote it.
 *
 *   npx tsx examples/openai-agent.ts [rounds]
 */
import OpenAI from "openai"
import { Rng } from "@turnwise/core"
import { Recipe } from "@turnwise/dsl"
import { recipes } from "@turnwise/recipes"
import { byteTokenizer, constantSchedule, createSupervisedTrainer } from "@turnwise/runtime"
import { byteChatFormat, serve } from "@turnwise/cli"
import type { ChatTool, ServeHandle } from "@turnwise/cli"

// ---------------------------------------------------------------------------------
// The agent: nothing but the openai client.

const addTool: OpenAI.ChatCompletionTool = {
  type: "function",
  function: { name: "add", description: "Add two integers", parameters: { type: "object", properties: { a: { type: "integer" }, b: { type: "integer" } } } },
}

/** What the agent did: its final answer (null when none came) and the additions it asked for. */
export interface AgentRun {
  readonly answer: string | null
  readonly additions: ReadonlyArray<readonly [number, number]>
}

/** Ask `question`, run any `add` calls, return the final answer. */
export const runAgent = async (client: OpenAI, question: string, episode: string, maxTurns = 3): Promise<AgentRun> => {
  const messages: Array<OpenAI.ChatCompletionMessageParam> = [{ role: "user", content: question }]
  const additions: Array<readonly [number, number]> = []
  for (let turn = 0; turn < maxTurns; turn++) {
    const reply = await client.chat.completions.create({ model: "turnwise", messages, tools: [addTool] }, { headers: { "x-turnwise-episode": episode } })
    const message = reply.choices[0]!.message
    const calls = message.tool_calls ?? []
    if (calls.length === 0) return { answer: message.content, additions }
    messages.push(message as OpenAI.ChatCompletionMessageParam)
    for (const call of calls) {
      if (call.type !== "function") continue
      const args = JSON.parse(call.function.arguments) as { a?: unknown; b?: unknown }
      const ok = typeof args.a === "number" && typeof args.b === "number"
      if (ok) additions.push([args.a as number, args.b as number])
      messages.push({
        role: "tool",
        tool_call_id: call.id,
        content: ok ? String((args.a as number) + (args.b as number)) : "error: add needs integers a and b",
      })
    }
  }
  return { answer: null, additions }
}

// ---------------------------------------------------------------------------------
// The trainer side: Turnwise.

/** The toy task: "What is a+b?" for one-digit a and b. */
export const problems = (
  count: number,
  seed: number,
): Array<{ readonly question: string; readonly answer: string; readonly a: number; readonly b: number }> => {
  const rng = Rng.fromSeed(seed)
  return Array.from({ length: count }, () => {
    const a = Math.floor(rng.next() * 10)
    const b = Math.floor(rng.next() * 10)
    return { question: `What is ${a}+${b}?`, answer: String(a + b), a, b }
  })
}

const chatTools: Array<ChatTool> = [{ name: "add", description: addTool.function.description ?? "", parameters: addTool.function.parameters }]

/** Supervised steps (at most `steps`, fewer once 97% of target tokens are predicted) on demonstrations of the format: call add with the question's numbers, then answer with the tool's output. */
export const teachFormat = async (server: ServeHandle, demos: ReturnType<typeof problems>, steps: number): Promise<number> => {
  const sequences = demos.map((p) => {
    const prompt = [
      byteTokenizer.bos,
      ...byteTokenizer.encode(byteChatFormat.prompt([{ role: "user", content: p.question, toolCalls: [], toolCallId: null }], chatTools)),
    ]
    const call = byteTokenizer.encode(`<call name="add">{"a":${p.a},"b":${p.b}}</call>`)
    const observation = byteTokenizer.encode(`<|end|>\n<|tool|><output>${p.answer}</output><|end|>\n<|assistant|>`)
    const answer = byteTokenizer.encode(`${p.answer}<|end|>`)
    const tokens = [...prompt, ...call, ...observation, ...answer]
    const mask = [...prompt.map(() => 0), ...call.map(() => 1), ...observation.map(() => 0), ...answer.map(() => 1)]
    return { tokens, mask, oldLogprobs: tokens.map(() => 0), advantages: tokens.map(() => 0), turnIndex: tokens.map(() => -1) }
  })
  const sft = createSupervisedTrainer(server.runtime.model, {
    schedule: constantSchedule(3e-3),
    microBatchSize: 8,
    rng: Rng.fromSeed(2),
    padId: byteTokenizer.pad,
  })
  let accuracy = 0
  for (let step = 0; step < steps && accuracy < 0.97; step++) accuracy = (await sft.step(sequences)).accuracy
  sft.dispose()
  return accuracy
}

/** What {@link main} reports per round. */
export interface Round {
  readonly round: number
  readonly policyVersion: number
  /** Fraction of the round's episodes answered correctly (before the round's step). */
  readonly successRate: number
}

/** Serve, teach the format, then train for `rounds` rounds; returns each round's success rate. */
export const main = async (options: {
  readonly rounds: number
  readonly tasksPerRound: number
  readonly groupSize: number
  /** Demonstrations of the tool format, and the most supervised steps on them. */
  readonly demonstrations: number
  readonly sftSteps: number
  readonly log?: (line: string) => void
}) => {
  const log = options.log ?? (() => {})
  const recipe = Recipe.derive(recipes.grpo!, { name: "grpo-openai-agent", rollout: { temperature: 1 }, optimizer: { lr: 1e-3 } })
  const server = await serve({ port: 0, model: { preset: "compact", seed: 7 }, recipe, maxNewTokens: 32 })
  const t0 = performance.now()
  try {
    const sftAccuracy = await teachFormat(server, problems(options.demonstrations, 1), options.sftSteps)
    log(JSON.stringify({ phase: "format", sftTokenAccuracy: sftAccuracy, seconds: Math.round((performance.now() - t0) / 1000) }))
    const client = new OpenAI({ baseURL: server.url, apiKey: "unused", maxRetries: 0 })
    const rounds: Array<Round> = []
    const started = performance.now()
    for (let round = 0; round < options.rounds; round++) {
      let correct = 0
      let total = 0
      for (const [k, p] of problems(options.tasksPerRound, 100 + round).entries()) {
        for (let g = 0; g < options.groupSize; g++) {
          const episode = `r${round}-t${k}-g${g}`
          const run = await runAgent(client, p.question, episode)
          const solved = run.answer?.trim() === p.answer
          // Partial credit for asking the tool the right question, so a group that never answers right still has a gradient.
          const reward = solved ? 1 : run.additions.some(([a, b]) => a === p.a && b === p.b) ? 0.5 : 0
          correct += solved ? 1 : 0
          total += 1
          await client.post(`/episodes/${episode}/reward`, { body: { reward } })
        }
      }
      const trained = await client.post<{ policy_version: number; skipped: boolean }>("/train")
      const result = { round, policyVersion: trained.policy_version, successRate: correct / total }
      rounds.push(result)
      log(JSON.stringify({ ...result, seconds: Math.round((performance.now() - started) / 1000) }))
    }
    return rounds
  } finally {
    await server.close()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rounds = Number(process.argv[2] ?? 6)
  await main({ rounds, tasksPerRound: 2, groupSize: 4, demonstrations: 6, sftSteps: 60, log: console.log })
}
