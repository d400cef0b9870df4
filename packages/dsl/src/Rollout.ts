/**
 * The multi-turn rollout: sample, run the code, feed the result back, repeat.
 *
 * For a batch of problems and G trajectories each, every trajectory is a row of one
 * sampling session, so its KV cache carries over from turn to turn and only new
 * context (tool feedback) is prefilled. A turn ends at a stop string (`</code>`,
 * `</answer>`), end of sequence or the per-turn limit. The turn's code runs in the
 * sandbox; calls from different trajectories run concurrently. A trajectory ends with
 * a final answer, at the turn budget, at the token budget, or when the policy stops
 * without answering. Token ids are recorded exactly as sampled.
 *
 * @category combinators
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { parseAnswer, parseToolCall, renderObservation } from "@turnwise/core"
import type { Batch, FinishReason, Group, MalformedReason, ToolCall, Trajectory, Turn } from "@turnwise/core"
import type { RolloutConfig } from "./Config.js"
import type { Task, TaskProblem } from "./Task.js"
import { Policy } from "./services/Policy.js"
import type { PolicyError } from "./services/Policy.js"
import { Sandbox } from "./services/Sandbox.js"
import type { Observation, SandboxError } from "./services/Sandbox.js"
import { Tokenizer } from "./services/Tokenizer.js"

/** Strings that end a policy turn. */
export const turnStops: ReadonlyArray<string> = ["</code>", "</answer>"]

interface RowState {
  readonly problem: number
  readonly promptTokens: ReadonlyArray<number>
  readonly turns: Array<Turn>
  used: number
  finish: FinishReason | null
  session: string | null
}

/**
 * Roll out G trajectories per problem.
 *
 * @example
 * const batch = yield* rollout(arithmeticTask, problems, recipe.rollout, { seed: 7, step: 3 })
 */
export const rollout = <P extends TaskProblem>(
  task: Task<P>,
  problems: ReadonlyArray<P>,
  config: RolloutConfig,
  options: { readonly seed: number; readonly step: number },
): Effect.Effect<Batch, PolicyError | SandboxError, Policy | Sandbox | Tokenizer | Scope.Scope> =>
  Effect.gen(function*() {
    const policy = yield* Policy
    const sandbox = yield* Sandbox
    const tokenizer = yield* Tokenizer
    const G = config.groupSize
    const session = yield* policy.session(problems.length * G, options.seed)

    const rows: Array<RowState> = []
    for (let r = 0; r < problems.length * G; r++) {
      const problem = Math.floor(r / G)
      const text = task.prompt(problems[problem]!)
      const promptTokens = [tokenizer.bos, ...tokenizer.encode(tokenizer.formatPrompt === undefined ? text : tokenizer.formatPrompt(text))]
      rows.push({ problem, promptTokens, turns: [], used: 0, finish: null, session: null })
      yield* session.append(r, promptTokens)
    }
    if (config.sandboxSession) {
      for (const row of rows) row.session = yield* sandbox.openSession(config.language)
    }

    for (let turn = 0; turn < config.maxTurns; turn++) {
      for (const row of rows) if (row.finish === null && row.used >= config.maxTokens) row.finish = "token-budget"
      const active = rows.flatMap((row, r) => (row.finish === null ? [r] : []))
      if (active.length === 0) break
      const generations = yield* session.generate(active, {
        maxNewTokens: config.maxNewTokensPerTurn,
        temperature: config.temperature,
        topP: config.topP,
        topK: config.topK,
        stop: turnStops,
      })

      // Decide each row's turn; collect the tool calls to run.
      const pending: Array<{ readonly r: number; readonly call: ToolCall }> = []
      const turnOf = new Map<
        number,
        {
          policyTokens: ReadonlyArray<number>
          logprobs: ReadonlyArray<number>
          text: string
          call: ToolCall | null
          malformed: MalformedReason | null
          answer: string | null
        }
      >()
      active.forEach((r, k) => {
        const row = rows[r]!
        const generation = generations[k]!
        const budget = config.maxTokens - row.used
        // A prefix of an autoregressive sample is itself a valid sample, so cutting at the budget keeps logprobs exact.
        const cut = Math.min(generation.tokens.length, Math.max(0, budget))
        const policyTokens = generation.tokens.slice(0, cut)
        const text = cut === generation.tokens.length ? generation.text : tokenizer.decode(policyTokens)
        const answer = parseAnswer(text)
        const parsed = answer === null ? parseToolCall(text, { language: config.language }) : { call: null, malformed: null }
        turnOf.set(r, { policyTokens, logprobs: generation.logprobs.slice(0, cut), text, call: parsed.call, malformed: parsed.malformed, answer })
        row.used += policyTokens.length
        if (answer !== null) row.finish = "answer"
        else if (cut < generation.tokens.length || generation.finish === "context") row.finish = "token-budget"
        else if (parsed.call !== null) pending.push({ r, call: parsed.call })
        else if (parsed.malformed === null) row.finish = "no-answer"
      })

      const observations = yield* Effect.forEach(
        pending,
        ({ r, call }) =>
          sandbox.run({
            language: config.language,
            code: call.code,
            timeoutMs: config.timeoutMs,
            memoryMb: config.memoryMb,
            ...(rows[r]!.session === null ? {} : { session: rows[r]!.session! }),
          }),
        { concurrency: "unbounded" },
      )
      const observationOf = new Map<number, Observation>(pending.map(({ r }, k) => [r, observations[k]!]))

      for (const r of active) {
        const row = rows[r]!
        const t = turnOf.get(r)!
        const observation = observationOf.get(r)
        let feedbackText = ""
        let feedbackTokens: ReadonlyArray<number> = []
        if (row.finish === null) {
          const rendered = observation !== undefined
            ? renderObservation(observation, { maxChars: config.maxOutputChars })
            : renderObservation({ ok: false, kind: "error", error: `malformed tool call (${t.malformed})`, stdout: "" }, { maxChars: config.maxOutputChars })
          const text = `\n${rendered}\n`
          const tokens = tokenizer.encode(text)
          if (row.used + tokens.length > config.maxTokens) {
            row.finish = "token-budget"
          } else {
            feedbackText = text
            feedbackTokens = tokens
            row.used += tokens.length
          }
        }
        row.turns.push({
          ...(observation === undefined ? {} : { toolStatus: observation.ok ? ("ok" as const) : observation.kind }),
          policyTokens: t.policyTokens,
          logprobs: t.logprobs,
          text: t.text,
          toolCall: t.call,
          malformed: t.malformed,
          feedbackTokens,
          feedbackText,
          answer: t.answer,
        })
        if (feedbackTokens.length > 0) yield* session.append(r, feedbackTokens)
      }
    }
    for (const row of rows) {
      if (row.finish === null) row.finish = "turn-budget"
      if (row.session !== null) yield* sandbox.closeSession(row.session)
    }

    const groups: Array<Group> = []
    for (let p = 0; p < problems.length; p++) {
      const problem = problems[p]!
      const groupId = `s${options.step}-${problem.id}`
      const trajectories: Array<Trajectory> = []
      for (let i = 0; i < G; i++) {
        const row = rows[p * G + i]!
        const partial = { promptId: problem.id, groupId, promptTokens: row.promptTokens, turns: row.turns, finishReason: row.finish! }
        const answer = row.finish === "answer" ? row.turns[row.turns.length - 1]!.answer : null
        const outcome = yield* task.grade(problem, answer, partial)
        trajectories.push({ ...partial, outcome })
      }
      groups.push({ groupId, promptId: problem.id, trajectories })
    }
    return { groups }
  })
