/**
 * Reward assigners: from a batch of judged trajectories to rewards, per turn (GTPO)
 * or per trajectory (GRPO).
 *
 * - `turn-level` (GTPO): r_{i,j} = r^acc_{i,j} + r^fmt_{i,j}; accuracy on the last
 *   turn only, a format penalty on each malformed turn and on the first turn of a
 *   trajectory that never called the tool.
 * - `trajectory-outcome` (GRPO baseline): one reward per trajectory by the paper's
 *   min rule r_i = min(r^acc_i, r^fmt_i).
 * - `outcome-on-last-turn`: the trajectory-outcome reward placed on the last turn
 *   (the ablation "trajectory-level reward with GTPO's other parts").
 * - {@link customTurnReward} / {@link customTrajectoryReward}: wrap a user's function
 *   as a catalogue entry, with its output checked.
 *
 * Accuracy comes from `outcome.correct` (option `accuracy: "binary"`) or the graded
 * `outcome.score` (`"score"`, e.g. the pass fraction of program-synthesis tests).
 *
 * @category constructors
 */
import { Schema } from "effect"
import type { RewardAssigner } from "./component.js"
import { AlgorithmInputError } from "./errors.js"
import type { Batch, Group, Trajectory } from "./model.js"
import { defaultsOf, setting } from "./setting.js"
import { NoOptions } from "./stats.js"
import { assertNonEmptyBatch, perTrajectory, perTurn, where, type PerTrajectory, type PerTurn } from "./values.js"

const Accuracy = Schema.Literals(["binary", "score"])
const Penalty = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))

/** Options of the `turn-level` assigner. */
export const TurnLevelOptions = Schema.Struct({
  accuracy: setting(Accuracy, "binary", "binary: 1 when the answer is correct; score: the outcome's graded score"),
  formatPenalty: setting(Penalty, 0.1, "Size of each format penalty (the reward is minus this), >= 0"),
  penalizeNoToolCall: setting(Schema.Boolean, true, "Penalise the first turn of a trajectory that never called the tool"),
  capFormatPerTurn: setting(Schema.Boolean, true, "A turn's format reward is at least -formatPenalty (penalties on one turn do not add)"),
})
export type TurnLevelOptions = typeof TurnLevelOptions.Type

/** Options of the `trajectory-outcome` and `outcome-on-last-turn` assigners. */
export const TrajectoryOutcomeOptions = Schema.Struct({
  accuracy: setting(Accuracy, "binary", "binary: 1 when the answer is correct; score: the outcome's graded score"),
  formatPenalty: setting(Penalty, 0.1, "The reward of a badly formatted trajectory is -formatPenalty, >= 0"),
  penalizeNoToolCall: setting(Schema.Boolean, true, "A trajectory that never called the tool counts as badly formatted"),
})
export type TrajectoryOutcomeOptions = typeof TrajectoryOutcomeOptions.Type

/** GTPO's defaults: binary accuracy, 0.1 penalties, penalties on one turn capped. */
export const turnLevelDefaults: TurnLevelOptions = defaultsOf(TurnLevelOptions)

/** GRPO baseline defaults: binary accuracy, 0.1 penalty, no tool call is a format failure. */
export const trajectoryOutcomeDefaults: TrajectoryOutcomeOptions = defaultsOf(TrajectoryOutcomeOptions)

const accuracyOf = (trajectory: Trajectory, accuracy: "binary" | "score"): number =>
  accuracy === "binary" ? (trajectory.outcome.correct ? 1 : 0) : trajectory.outcome.score

const calledTool = (trajectory: Trajectory): boolean => trajectory.turns.some((turn) => turn.toolCall !== null)

/**
 * GTPO's turn-level rewards: accuracy on the last turn, -formatPenalty on each
 * malformed turn and on turn 0 when no turn called the tool.
 *
 * @example
 * const rewards = turnLevelRewards(batch)                         // defaults
 * rewards.values[0][1]                                            // e.g. [-0.1, 0, 1]
 * turnLevelRewards(batch, { accuracy: "score", formatPenalty: 0.2 })
 */
export const turnLevelRewards = (batch: Batch, options: TurnLevelOptions = turnLevelDefaults): PerTurn<"reward"> => {
  const fn = "turnLevelRewards"
  const o = options
  assertNonEmptyBatch(fn, batch)
  return perTurn(
    "reward",
    batch.groups.map((group) =>
      group.trajectories.map((trajectory) => {
        const last = trajectory.turns.length - 1
        const noTool = o.penalizeNoToolCall && !calledTool(trajectory)
        return trajectory.turns.map((turn, j) => {
          let format = 0
          if (turn.malformed !== null) format -= o.formatPenalty
          if (j === 0 && noTool) format -= o.formatPenalty
          if (o.capFormatPerTurn) format = Math.max(format, -o.formatPenalty)
          const accuracy = j === last ? accuracyOf(trajectory, o.accuracy) : 0
          return accuracy + format
        })
      })
    ),
  )
}

/**
 * The GRPO baseline's reward of one trajectory by the min rule r = min(r^acc, r^fmt).
 *
 * Reading of the paper: r^fmt places no constraint on a well-formed trajectory (think
 * of it as +infinity) and is -formatPenalty on a badly formatted one (a malformed
 * turn, or no tool call when `penalizeNoToolCall`). So a well-formed trajectory gets
 * its accuracy, and a badly formatted one gets min(acc, -formatPenalty) =
 * -formatPenalty whatever its answer (accuracy is >= 0): a format failure voids the
 * answer. With formatPenalty 0 a badly formatted trajectory gets 0.
 *
 * @example
 * trajectoryOutcomeReward(trajectory, trajectoryOutcomeDefaults) // 1, 0 or -0.1
 */
export const trajectoryOutcomeReward = (trajectory: Trajectory, options: TrajectoryOutcomeOptions): number => {
  const accuracy = accuracyOf(trajectory, options.accuracy)
  const badlyFormatted = trajectory.turns.some((turn) => turn.malformed !== null) || (options.penalizeNoToolCall && !calledTool(trajectory))
  return badlyFormatted ? Math.min(accuracy, -options.formatPenalty) : accuracy
}

/**
 * GRPO's per-trajectory rewards (min rule, see {@link trajectoryOutcomeReward}).
 *
 * @example
 * trajectoryOutcomeRewards(batch).values // [[1, 0, -0.1], ...]
 */
export const trajectoryOutcomeRewards = (batch: Batch, options: TrajectoryOutcomeOptions = trajectoryOutcomeDefaults): PerTrajectory<"reward"> => {
  const fn = "trajectoryOutcomeRewards"
  const o = options
  assertNonEmptyBatch(fn, batch)
  return perTrajectory("reward", batch.groups.map((group) => group.trajectories.map((t) => trajectoryOutcomeReward(t, o))))
}

/**
 * The trajectory-outcome reward on each trajectory's last turn, 0 on earlier turns.
 *
 * @example
 * outcomeOnLastTurnRewards(batch).values[0][0] // e.g. [0, 0, 1]
 */
export const outcomeOnLastTurnRewards = (batch: Batch, options: TrajectoryOutcomeOptions = trajectoryOutcomeDefaults): PerTurn<"reward"> => {
  const fn = "outcomeOnLastTurnRewards"
  const o = options
  assertNonEmptyBatch(fn, batch)
  return perTurn(
    "reward",
    batch.groups.map((group) =>
      group.trajectories.map((trajectory) => {
        const reward = trajectoryOutcomeReward(trajectory, o)
        const last = trajectory.turns.length - 1
        return trajectory.turns.map((_, j) => (j === last ? reward : 0))
      })
    ),
  )
}

/** Catalogue entry `turn-level` (GTPO). */
export const turnLevelAssigner: RewardAssigner<"turn", TurnLevelOptions> = {
  name: "turn-level",
  summary: "GTPO: accuracy on the last turn plus a format penalty on each malformed turn and on turn 0 when no tool was called",
  level: "turn",
  options: TurnLevelOptions,
  defaults: turnLevelDefaults,
  run: ({ batch }, options) => turnLevelRewards(batch, options),
}

/** Catalogue entry `trajectory-outcome` (GRPO). */
export const trajectoryOutcomeAssigner: RewardAssigner<"trajectory", TrajectoryOutcomeOptions> = {
  name: "trajectory-outcome",
  summary: "GRPO: one reward per trajectory, min(accuracy, format): accuracy if well formed, else -formatPenalty",
  level: "trajectory",
  options: TrajectoryOutcomeOptions,
  defaults: trajectoryOutcomeDefaults,
  run: ({ batch }, options) => trajectoryOutcomeRewards(batch, options),
}

/** Catalogue entry `outcome-on-last-turn` (ablation). */
export const outcomeOnLastTurnAssigner: RewardAssigner<"turn", TrajectoryOutcomeOptions> = {
  name: "outcome-on-last-turn",
  summary: "the trajectory-outcome reward on the last turn, 0 on earlier turns",
  level: "turn",
  options: TrajectoryOutcomeOptions,
  defaults: trajectoryOutcomeDefaults,
  run: ({ batch }, options) => outcomeOnLastTurnRewards(batch, options),
}

/** Options of the `tests-passed` and `tests-passed-outcome` assigners. */
export const TestsPassedOptions = Schema.Struct({
  allPass: setting(Schema.Boolean, false, "Reward only a submission that passes every test (1 or 0) instead of the pass fraction"),
  formatPenalty: setting(Penalty, 0.1, "Size of each format penalty (the reward is minus this), >= 0"),
  penalizeNoToolCall: setting(Schema.Boolean, true, "A trajectory that never called the tool is penalised (turn 0, or the whole trajectory)"),
})
export type TestsPassedOptions = typeof TestsPassedOptions.Type

/** Defaults: graded credit (the fraction of hidden tests passed), 0.1 format penalties. */
export const testsPassedDefaults: TestsPassedOptions = defaultsOf(TestsPassedOptions)

/**
 * Catalogue entry `tests-passed`: program synthesis with GTPO's turn-level rewards.
 * The last turn earns the fraction of hidden tests the submission passed (the
 * program-synthesis task grades it in the sandbox and stores it as `outcome.score`),
 * or 1/0 for all-pass with `allPass`; malformed turns get the format penalty.
 */
export const testsPassedAssigner: RewardAssigner<"turn", TestsPassedOptions> = {
  name: "tests-passed",
  summary: "program synthesis, per turn: the fraction of hidden tests passed on the last turn (or all-pass 1/0), format penalties as turn-level",
  level: "turn",
  options: TestsPassedOptions,
  defaults: testsPassedDefaults,
  run: ({ batch }, options) =>
    turnLevelRewards(batch, {
      accuracy: options.allPass ? "binary" : "score",
      formatPenalty: options.formatPenalty,
      penalizeNoToolCall: options.penalizeNoToolCall,
      capFormatPerTurn: true,
    }),
}

/** Catalogue entry `tests-passed-outcome`: the same credit as one reward per trajectory (GRPO's min rule). */
export const testsPassedOutcomeAssigner: RewardAssigner<"trajectory", TestsPassedOptions> = {
  name: "tests-passed-outcome",
  summary: "program synthesis, per trajectory: the fraction of hidden tests passed (or all-pass 1/0), -formatPenalty if badly formatted",
  level: "trajectory",
  options: TestsPassedOptions,
  defaults: testsPassedDefaults,
  run: ({ batch }, options) =>
    trajectoryOutcomeRewards(batch, {
      accuracy: options.allPass ? "binary" : "score",
      formatPenalty: options.formatPenalty,
      penalizeNoToolCall: options.penalizeNoToolCall,
    }),
}

/**
 * Wrap a user's per-turn reward function as a catalogue entry. The function gets
 * each trajectory with its group; its result must have one finite number per turn.
 *
 * @example
 * const lengthPenalty = customTurnReward("length-penalty", "-0.01 per policy token",
 *   (t) => t.turns.map((turn) => -0.01 * turn.policyTokens.length))
 * const assigners = { ...rewardAssigners, [lengthPenalty.name]: lengthPenalty }
 */
export const customTurnReward = (
  name: string,
  summary: string,
  fn: (trajectory: Trajectory, group: Group) => ReadonlyArray<number>,
): RewardAssigner<"turn", NoOptions> => ({
  name,
  summary,
  level: "turn",
  options: NoOptions,
  defaults: {},
  run: ({ batch }) => {
    assertNonEmptyBatch(name, batch)
    return perTurn(
      "reward",
      batch.groups.map((group, g) =>
        group.trajectories.map((trajectory, i) => {
          const rewards = fn(trajectory, group)
          if (rewards.length !== trajectory.turns.length) {
            throw new AlgorithmInputError({
              fn: name,
              where: where(g, i),
              problem: `the reward function returned ${rewards.length} rewards for ${trajectory.turns.length} turns`,
            })
          }
          rewards.forEach((r, j) => {
            if (!Number.isFinite(r)) throw new AlgorithmInputError({ fn: name, where: where(g, i, j), problem: `the reward function returned ${r}` })
          })
          return [...rewards]
        })
      ),
    )
  },
})

/**
 * Wrap a user's per-trajectory reward function as a catalogue entry; its result must
 * be a finite number.
 *
 * @example
 * const partial = customTrajectoryReward("score", "the graded score", (t) => t.outcome.score)
 */
export const customTrajectoryReward = (
  name: string,
  summary: string,
  fn: (trajectory: Trajectory, group: Group) => number,
): RewardAssigner<"trajectory", NoOptions> => ({
  name,
  summary,
  level: "trajectory",
  options: NoOptions,
  defaults: {},
  run: ({ batch }) => {
    assertNonEmptyBatch(name, batch)
    return perTrajectory(
      "reward",
      batch.groups.map((group, g) =>
        group.trajectories.map((trajectory, i) => {
          const r = fn(trajectory, group)
          if (typeof r !== "number" || !Number.isFinite(r)) {
            throw new AlgorithmInputError({ fn: name, where: where(g, i), problem: `the reward function returned ${String(r)}` })
          }
          return r
        })
      ),
    )
  },
})

/**
 * The built-in reward assigners by name.
 *
 * @example
 * const assigner = rewardAssigners["turn-level"]
 * assigner.run({ batch }, assigner.defaults)
 */
export const rewardAssigners = {
  "turn-level": turnLevelAssigner,
  "trajectory-outcome": trajectoryOutcomeAssigner,
  "outcome-on-last-turn": outcomeOnLastTurnAssigner,
  "tests-passed": testsPassedAssigner,
  "tests-passed-outcome": testsPassedOutcomeAssigner,
} as const

/** The name of a built-in reward assigner. */
export type RewardAssignerName = keyof typeof rewardAssigners
