/**
 * The served policy: answers chat requests by sampling the policy being trained,
 * records episodes token by token, takes rewards and trains on rewarded episodes
 * with a recipe's stages, after which every answer comes from the new weights.
 *
 * Sampling goes one token per `generate` call on a one-row session, so a streamed
 * reply and a whole one draw the same tokens (a row's generator is forked from the
 * seed and consumed one draw per token either way) and stop strings are checked on
 * the decoded text after each token. Every request opens its own session, which
 * snapshots the weights when it opens: a training step is seen by the next request.
 * One request samples at a time and training waits for it (a semaphore), because a
 * snapshot must not be taken half-way through an update.
 *
 * Episode turns are sampled at the recipe's rollout temperature, top-p and top-k
 * whatever the request asks: the trainer recomputes log-probs at that temperature,
 * and recorded log-probs must be comparable. Requests outside episodes use their own.
 *
 * Rewards: the client's numbers replace the recipe's reward stage (an assigner at
 * the same level: per-turn numbers per turn, one number on the last turn, or their sum
 * per trajectory); shaping, returns, advantages, the sample filter and the loss are the
 * recipe's.
 *
 * @category services
 */
import { randomUUID } from "node:crypto"
import { Context, Effect, Layer, Semaphore } from "effect"
import { customTrajectoryReward, customTurnReward } from "@turnwise/core"
import type { Batch, Group, Trajectory } from "@turnwise/core"
import { Policy, Recipe, Tokenizer, trainOnBatch, use } from "@turnwise/dsl"
import type { PolicyError, RecipeType, RunError } from "@turnwise/dsl"
import type { ChatFormat } from "./chat-format.js"
import { visibleContent } from "./chat-format.js"
import { EpisodeStore, episodeTrajectory, totalReward } from "./episodes.js"
import type { Episode, EpisodeReward, RecordedTurn } from "./episodes.js"
import { invalidRequest, ServeRequestError } from "./errors.js"
import type { ChatMessage, ChatRequest } from "./request.js"

/** Settings of a served policy. */
export interface ServedPolicyConfig {
  /** The model name clients pass and `/v1/models` lists. */
  readonly modelName: string
  readonly format: ChatFormat
  /** The recipe whose stages (and rollout temperature) train the policy. */
  readonly recipe: RecipeType
  /** Most tokens one reply may have (a request may ask for fewer). */
  readonly maxNewTokens: number
  /** Seed of sampling when a request gives none. */
  readonly seed: number
  /** Train automatically once this many rewarded episodes wait (0: only when asked). */
  readonly trainEvery: number
  /** In-process rewards: asked at training time for each episode without a reward (null: none yet). */
  readonly rewardHook?: (episode: EpisodeView) => EpisodeReward | null | Promise<EpisodeReward | null>
}

/** A request's reply. */
export interface Completion {
  readonly id: string
  readonly created: number
  readonly model: string
  readonly message: ChatMessage
  readonly finishReason: "stop" | "length" | "tool_calls"
  readonly usage: { readonly promptTokens: number; readonly completionTokens: number }
  readonly policyVersion: number
  /** The sampled ids and their log-probs. */
  readonly tokenIds: ReadonlyArray<number>
  readonly logprobs: ReadonlyArray<number>
  /** Set for requests in an episode. */
  readonly episode: { readonly id: string; readonly branch: number; readonly turn: number; readonly mismatch: string | null } | null
}

/** Where a request belongs. */
export interface RequestContext {
  readonly episodeId: string | null
  /** The client's name for the episode's group (episodes answering one task). */
  readonly group: string | null
}

/** A streamed piece of content. */
export type OnContent = (delta: string) => void

/** An episode as clients see it (`GET /v1/episodes/{id}`, the reward hook). */
export interface EpisodeView {
  readonly id: string
  readonly group: string
  readonly reward: EpisodeReward | null
  readonly trained: boolean
  /** The conversation of the last branch: its last request's messages and the last reply. */
  readonly messages: ReadonlyArray<ChatMessage>
  readonly branches: ReadonlyArray<{
    readonly promptTokens: ReadonlyArray<number>
    readonly mismatch: string | null
    readonly turns: ReadonlyArray<{
      readonly policyTokens: ReadonlyArray<number>
      readonly logprobs: ReadonlyArray<number>
      readonly feedbackTokens: ReadonlyArray<number>
      readonly text: string
      readonly feedbackText: string
      readonly policyVersion: number
    }>
  }>
}

/** What one training step did. */
export interface ServedTrainResult {
  readonly policyVersion: number
  readonly episodes: number
  readonly groups: number
  readonly skipped: boolean
  readonly metrics: Readonly<Record<string, number>>
}

/** What a served policy offers. */
export interface ServedPolicyShape {
  readonly modelName: string
  readonly policyVersion: () => number
  readonly complete: (request: ChatRequest, context: RequestContext, onContent?: OnContent) => Effect.Effect<Completion, ServeRequestError>
  readonly reward: (episodeId: string, reward: EpisodeReward) => Effect.Effect<{ readonly trained: ServedTrainResult | null }, ServeRequestError>
  readonly train: () => Effect.Effect<ServedTrainResult, ServeRequestError>
  readonly episode: (episodeId: string) => Effect.Effect<EpisodeView, ServeRequestError>
}

const viewOf = (episode: Episode): EpisodeView => {
  const last = episode.branches[episode.branches.length - 1]
  const lastTurn = last?.turns[last.turns.length - 1]
  return {
    id: episode.id,
    group: episode.group,
    reward: episode.reward,
    trained: episode.trained,
    messages: lastTurn === undefined ? [] : [...lastTurn.messages, lastTurn.reply],
    branches: episode.branches.map((b) => ({
      promptTokens: b.promptTokens,
      mismatch: b.mismatch,
      turns: b.turns.map((t) => ({
        policyTokens: t.policyTokens,
        logprobs: t.logprobs,
        feedbackTokens: t.feedbackTokens,
        text: t.text,
        feedbackText: t.feedbackText,
        policyVersion: t.policyVersion,
      })),
    })),
  }
}

const serverError = (code: string, error: { readonly message: string }) =>
  new ServeRequestError({ status: 500, type: "server_error", param: null, code, message: error.message })

/** The recipe with the client's rewards in place of its reward stage (see the module header). */
const withClientRewards = (recipe: RecipeType, rewards: WeakMap<Trajectory, EpisodeReward>): RecipeType => {
  // The filter keeps trajectory objects as they are, so the batch's own objects find their episode's reward.
  const rewardOf = (trajectory: Trajectory) => rewards.get(trajectory) ?? 0
  const perTurn = customTurnReward("client-reward", "the rewards the client posted for each episode", (trajectory) => {
    const reward = rewardOf(trajectory)
    if (typeof reward !== "number") return [...reward]
    return trajectory.turns.map((_, j) => (j === trajectory.turns.length - 1 ? reward : 0))
  })
  const perTrajectory = customTrajectoryReward(
    "client-reward",
    "the total reward the client posted for each episode",
    (trajectory) => totalReward(rewardOf(trajectory)),
  )
  return recipe.reward.entry.level === "turn"
    ? Recipe.derive(recipe, { name: recipe.name, reward: use(perTurn) })
    : Recipe.derive(recipe, { name: recipe.name, reward: use(perTrajectory) })
}

/**
 * The served policy over the `Policy` and `Tokenizer` services.
 *
 * @example
 * const layer = ServedPolicy.layer({ modelName: "turnwise", format: byteChatFormat, recipe: gtpo, maxNewTokens: 64, seed: 1, trainEvery: 0 })
 */
export class ServedPolicy extends Context.Service<ServedPolicy, ServedPolicyShape>()("turnwise/cli/ServedPolicy") {
  static readonly layer = (config: ServedPolicyConfig): Layer.Layer<ServedPolicy, never, Policy | Tokenizer> =>
    Layer.effect(ServedPolicy, makeServedPolicy(config))
}

const makeServedPolicy = (config: ServedPolicyConfig) =>
  Effect.gen(function*() {
    const policy = yield* Policy
    const tokenizer = yield* Tokenizer
    const store = new EpisodeStore(config.format, { bos: tokenizer.bos, encode: tokenizer.encode })
    const lock = Semaphore.makeUnsafe(1)
    const rollout = config.recipe.rollout
    let version = 0
    let requests = 0

    const sample = (
      context: ReadonlyArray<number>,
      options: {
        readonly maxNewTokens: number
        readonly temperature: number
        readonly topP: number
        readonly topK: number
        readonly seed: number
        readonly stops: ReadonlyArray<string>
      },
      onText: (text: string) => void,
    ) =>
      Effect.scoped(
        Effect.gen(function*() {
          const session = yield* policy.session(1, options.seed)
          yield* session.append(0, context)
          const tokens: Array<number> = []
          const logprobs: Array<number> = []
          let finish: RecordedTurn["finish"] = "length"
          let text = ""
          while (tokens.length < options.maxNewTokens) {
            const [g] = yield* session.generate([0], { maxNewTokens: 1, temperature: options.temperature, topP: options.topP, topK: options.topK, stop: [] })
            if (g === undefined || g.tokens.length === 0) {
              finish = "context"
              break
            }
            tokens.push(...g.tokens)
            logprobs.push(...g.logprobs)
            text = tokenizer.decode(tokens)
            onText(text)
            if (g.finish === "eos") {
              finish = "eos"
              break
            }
            if (options.stops.some((s) => text.includes(s))) {
              finish = "stop"
              break
            }
            if (g.finish === "context") {
              finish = "context"
              break
            }
          }
          return { tokens, logprobs, text, finish }
        }),
      )

    const complete = (request: ChatRequest, where: RequestContext, onContent?: OnContent) =>
      Effect.gen(function*() {
        const inEpisode = where.episodeId !== null
        const seed = request.seed ?? config.seed * 1_000_003 + requests++
        const clientStops = request.stop
        const stops = [...config.format.stops, ...clientStops]
        let shown = ""
        const onText = (text: string) => {
          if (onContent === undefined) return
          const visible = visibleContent(
            text,
            request.tools.length > 0 ? config.format.markers : config.format.markers.filter((m) => config.format.stops.includes(m)),
            clientStops,
          )
          if (visible.length > shown.length && visible.startsWith(shown)) {
            onContent(visible.slice(shown.length))
            shown = visible
          }
        }
        // Planning and recording happen under the lock, so two requests of one episode cannot both extend the same turn.
        return yield* lock.withPermits(1)(
          Effect.gen(function*() {
            const plan = yield* Effect.try({
              try: () => store.plan(where.episodeId, request),
              catch: (e) => (e instanceof ServeRequestError ? e : serverError("plan_failed", e as Error)),
            })
            const room = policy.maxSeqLen - plan.context.length
            if (room < 1) {
              return yield* invalidRequest(
                "context_length_exceeded",
                `the conversation is ${plan.context.length} tokens; this model holds ${policy.maxSeqLen}, leaving no room for a reply`,
                "messages",
              )
            }
            const maxNewTokens = Math.min(room, config.maxNewTokens, request.maxTokens ?? config.maxNewTokens)
            const versionNow = version
            const out = yield* sample(
              plan.context,
              {
                maxNewTokens,
                temperature: inEpisode ? rollout.temperature : (request.temperature ?? 1),
                topP: inEpisode ? rollout.topP : (request.topP ?? 1),
                topK: inEpisode ? rollout.topK : 0,
                seed,
                stops,
              },
              onText,
            ).pipe(Effect.mapError((e: PolicyError) => serverError("sampling_failed", e)))
            // Content ends at the first client stop string; the recorded tokens keep it.
            let text = out.text
            for (const s of clientStops) {
              const at = text.indexOf(s)
              if (at >= 0) text = text.slice(0, at)
            }
            const parsed = config.format.parse(text, request.toolsEnabled ? request.tools : [])
            const turnIndex = plan.episode === null ? 0 : (plan.episode.branches[plan.branch]?.turns.length ?? 0)
            const callBase = `call_${where.episodeId ?? "r" + seed}_${plan.branch}_${turnIndex}`
            const message: ChatMessage = {
              role: "assistant",
              content: parsed.content,
              toolCalls: parsed.calls.map((c, k) => ({ id: `${callBase}_${k}`, name: c.name, arguments: c.arguments })),
              toolCallId: null,
            }
            const finishReason = message.toolCalls.length > 0 ? "tool_calls" : out.finish === "length" || out.finish === "context" ? "length" : "stop"
            store.record(plan, request, {
              policyTokens: out.tokens,
              logprobs: out.logprobs,
              text: out.text,
              finish: out.finish,
              malformed: parsed.malformed,
              reply: message,
              policyVersion: versionNow,
            }, where.group)
            const completion: Completion = {
              id: `chatcmpl-${randomUUID()}`,
              created: Math.floor(Date.now() / 1000),
              model: config.modelName,
              message,
              finishReason,
              usage: { promptTokens: plan.context.length, completionTokens: out.tokens.length },
              policyVersion: versionNow,
              tokenIds: out.tokens,
              logprobs: out.logprobs,
              episode: where.episodeId === null ? null : { id: where.episodeId, branch: plan.branch, turn: turnIndex, mismatch: plan.mismatch },
            }
            return completion
          }),
        )
      })

    const train = (): Effect.Effect<ServedTrainResult, ServeRequestError> =>
      Effect.gen(function*() {
        if (config.rewardHook !== undefined) {
          for (const episode of store.all()) {
            if (episode.reward !== null || episode.trained || episode.branches.length === 0) continue
            const hook = config.rewardHook
            const reward = yield* Effect.tryPromise({ try: async () => hook(viewOf(episode)), catch: (e) => serverError("reward_hook_failed", e as Error) })
            if (reward !== null) {
              yield* Effect.try({
                try: () => store.setReward(episode.id, reward),
                catch: (e) => (e instanceof ServeRequestError ? e : serverError("reward_hook_failed", e as Error)),
              })
            }
          }
        }
        const ready = store.all().filter((e) => e.reward !== null && !e.trained && e.branches.length > 0)
        if (ready.length === 0) {
          return yield* new ServeRequestError({
            status: 409,
            type: "invalid_request_error",
            param: null,
            code: "nothing_to_train",
            message: "no rewarded episode waits for training: post rewards to /v1/episodes/{id}/reward first",
          })
        }
        if (config.recipe.rollout.temperature === 0) {
          return yield* invalidRequest("invalid_recipe", "the recipe samples greedily (rollout.temperature 0); training needs temperature > 0")
        }
        const byGroup = new Map<string, Array<Episode>>()
        for (const e of ready) {
          byGroup.set(e.group, [...(byGroup.get(e.group) ?? []), e])
        }
        const rewards = new WeakMap<Trajectory, EpisodeReward>()
        const groups: Array<Group> = [...byGroup.entries()].map(([group, episodes]) => {
          const groupId = `v${version}-${group}`
          const trajectories = episodes.map((e) => {
            const trajectory = episodeTrajectory(e, groupId)
            rewards.set(trajectory, e.reward!)
            return trajectory
          })
          return { groupId, promptId: group, trajectories }
        })
        const batch: Batch = { groups }
        const recipe = withClientRewards(config.recipe, rewards)
        const result = yield* lock.withPermits(1)(trainOnBatch(recipe, batch)).pipe(
          Effect.provideService(Policy, policy),
          Effect.mapError((e: RunError) => serverError("training_failed", e)),
        )
        for (const e of ready) e.trained = true
        if (!result.report.skipped) version += 1
        return { policyVersion: version, episodes: ready.length, groups: groups.length, skipped: result.report.skipped, metrics: result.metrics }
      })

    const served: ServedPolicyShape = {
      modelName: config.modelName,
      policyVersion: () => version,
      complete,
      reward: (id, reward) =>
        Effect.gen(function*() {
          yield* Effect.try({
            try: () => store.setReward(id, reward),
            catch: (e) => (e instanceof ServeRequestError ? e : serverError("reward_failed", e as Error)),
          })
          const waiting = store.all().filter((e) => e.reward !== null && !e.trained).length
          return { trained: config.trainEvery > 0 && waiting >= config.trainEvery ? yield* train() : null }
        }),
      train,
      episode: (id) =>
        Effect.try({ try: () => viewOf(store.get(id)), catch: (e) => (e instanceof ServeRequestError ? e : serverError("episode_failed", e as Error)) }),
    }
    return served
  })
