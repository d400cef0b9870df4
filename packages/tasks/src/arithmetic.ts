/**
 * The built-in task: seeded arithmetic problems at five graded levels, each with an
 * exact answer and a reference solution as JavaScript tool calls.
 *
 * - Level 1: one operation (+, -, *) on 2-3 digit numbers: `482*97=?`.
 * - Level 2: 3-4 digit multiplication and addition: `4821*973+1205=?`.
 * - Level 3: 3-4 operations with parentheses (division only where exact):
 *   `(482+97)*13-256=?`.
 * - Level 4: word problems in 2-3 steps where a later step needs an earlier result;
 *   the reference solution makes one tool call per step.
 * - Level 5: large numbers (5-8 digit operands): `48213975*9038+7712093=?`.
 *
 * Levels 1-3 and 5 are written as the bare expression followed by `=?`, so a tiny
 * model can copy the question into its code. With `phrasings: "varied"` the
 * expression is instead wrapped in one of several training phrasings ("What is
 * 482*97?", "Compute 482*97."); with "varied-unseen" the held-out side is asked only in
 * phrasings kept out of training, so evaluation asks in words the policy never trained
 * on. Every intermediate value stays within
 * Number.MAX_SAFE_INTEGER (checked with BigInt), so plain JavaScript evaluates the
 * copied expression exactly and no `n` suffixes are needed.
 *
 * Train and held-out sets are disjoint by construction: a problem's split is a hash
 * of its question text, and each set keeps only the questions that hash into it.
 * The same seed gives the same problems; a longer run's list starts with a
 * shorter run's list.
 *
 * @category constructors
 */
import { Data } from "effect"
import { Rng } from "@turnwise/core"
import { canonicalAnswer } from "./answers.js"
import type { Problem } from "./problem.js"

/** Which side of the train/held-out partition a problem belongs to. */
export type Split = "train" | "heldout"

/** The graded difficulty levels the generator knows. */
export const LEVELS = [1, 2, 3, 4, 5] as const
export type Level = (typeof LEVELS)[number]

/**
 * Options of {@link generateProblems} were unusable.
 *
 * @example
 * throw new TaskConfigError({ fn: "generateProblems", problem: "level 7 is not one of 1..5" })
 */
export class TaskConfigError extends Data.TaggedError("TaskConfigError")<{
  readonly fn: string
  readonly problem: string
}> {
  override get message(): string {
    return `${this.fn}: ${this.problem}`
  }
}

// ---------------------------------------------------------------------------
// Hashing and splits

/** FNV-1a over the UTF-16 code units, from a given offset basis (32 bits). */
const fnv1a = (text: string, basis: number): number => {
  let h = basis >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}

/**
 * The split a question belongs to: a fixed hash of its text, so the partition does
 * not depend on the seed or on the order of generation.
 *
 * @example
 * splitOf("482*97=?")        // "train" or "heldout", always the same one
 * splitOf("482*97=?", 0.5)   // about half of all questions are held out
 */
export const splitOf = (question: string, heldoutFraction = 0.2): Split =>
  fnv1a(question, 0x811c9dc5) % 10_000 < Math.round(heldoutFraction * 10_000) ? "heldout" : "train"

/** A 64-bit hex digest of a question, used in problem ids. */
const questionDigest = (question: string): string =>
  fnv1a(question, 0x811c9dc5).toString(16).padStart(8, "0") + fnv1a(question, 0x050c5d1f).toString(16).padStart(8, "0")

// ---------------------------------------------------------------------------
// Expressions

type Op = "+" | "-" | "*" | "/"

type Expr =
  | { readonly kind: "num"; readonly value: bigint }
  | { readonly kind: "op"; readonly op: Op; readonly left: Expr; readonly right: Expr }

const num = (value: bigint): Expr => ({ kind: "num", value })
const bin = (op: Op, left: Expr, right: Expr): Expr => ({ kind: "op", op, left, right })

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

/** Exact value of an expression; null when an intermediate leaves the safe range or a division is inexact. */
const evaluate = (e: Expr): bigint | null => {
  if (e.kind === "num") return e.value
  const l = evaluate(e.left)
  const r = evaluate(e.right)
  if (l === null || r === null) return null
  let v: bigint
  switch (e.op) {
    case "+":
      v = l + r
      break
    case "-":
      v = l - r
      break
    case "*":
      v = l * r
      break
    case "/":
      if (r === 0n || l % r !== 0n) return null
      v = l / r
      break
  }
  // Plain JS numbers are exact only up to 2^53; the model's code uses plain numbers.
  return v > MAX_SAFE || v < -MAX_SAFE ? null : v
}

const precedence = (e: Expr): number => (e.kind === "num" ? 3 : e.op === "+" || e.op === "-" ? 1 : 2)

/** Render with the fewest parentheses that keep JavaScript's reading of the tree. */
const render = (e: Expr): string => {
  if (e.kind === "num") return e.value.toString()
  const p = precedence(e)
  const left = precedence(e.left) < p ? `(${render(e.left)})` : render(e.left)
  // a-(b+c) and a/(b*c) need parentheses on the right even at equal precedence.
  const rightNeeds = precedence(e.right) < p || (precedence(e.right) === p && (e.op === "-" || e.op === "/"))
  const right = rightNeeds ? `(${render(e.right)})` : render(e.right)
  return `${left}${e.op}${right}`
}

const countOps = (e: Expr): number => (e.kind === "num" ? 0 : 1 + countOps(e.left) + countOps(e.right))

// ---------------------------------------------------------------------------
// Random draws

/** A uniform integer in [lo, hi]. */
const between = (rng: Rng, lo: number, hi: number): number => lo + rng.int(hi - lo + 1)

/** A uniform integer with exactly `digits` digits. */
const withDigits = (rng: Rng, digits: number): bigint => BigInt(between(rng, 10 ** (digits - 1), 10 ** digits - 1))

const pick = <A>(rng: Rng, items: ReadonlyArray<A>): A => {
  const item = items[rng.int(items.length)]
  if (item === undefined) throw new TaskConfigError({ fn: "pick", problem: "empty choice list" })
  return item
}

/** A drawn problem before it is given an id. */
interface Draft {
  readonly question: string
  readonly answer: bigint
  readonly steps: ReadonlyArray<string>
  readonly family: string
  readonly tags: Record<string, string | number | boolean>
}

const expressionDraft = (e: Expr, value: bigint): Draft => ({
  question: `${render(e)}=?`,
  answer: value,
  steps: [render(e)],
  family: "arithmetic",
  tags: { ops: countOps(e), steps: 1 },
})

const level1 = (rng: Rng): Expr => bin(pick(rng, ["+", "-", "*"] as const), num(withDigits(rng, between(rng, 2, 3))), num(withDigits(rng, between(rng, 2, 3))))

const level2 = (rng: Rng): Expr => {
  const operand = () => num(withDigits(rng, between(rng, 3, 4)))
  const shape = rng.next()
  if (shape < 0.6) return bin("*", operand(), operand())
  if (shape < 0.8) return bin("+", operand(), operand())
  return bin("+", bin("*", operand(), operand()), operand())
}

/** A random tree with `ops` operations on 1-3 digit leaves; division only where exact. */
const randomTree = (rng: Rng, ops: number): Expr => {
  if (ops === 0) return num(withDigits(rng, pick(rng, [1, 2, 2, 3, 3])))
  const op = pick(rng, ["+", "-", "*", "*", "/"] as const)
  if (op === "/") {
    // Build the dividend first, then choose a divisor of its value so the result is an integer.
    const left = randomTree(rng, ops - 1)
    const value = evaluate(left)
    if (value !== null && value !== 0n) {
      const divisors: Array<bigint> = []
      for (let d = 2n; d <= 40n; d++) if (value % d === 0n) divisors.push(d)
      if (divisors.length > 0) return bin("/", left, num(pick(rng, divisors)))
    }
    return bin("*", left, num(withDigits(rng, 2)))
  }
  const leftOps = rng.int(ops)
  return bin(op, randomTree(rng, leftOps), randomTree(rng, ops - 1 - leftOps))
}

const level3 = (rng: Rng): Expr => randomTree(rng, between(rng, 3, 4))

const level5 = (rng: Rng): Expr => {
  const big = () => num(withDigits(rng, between(rng, 6, 8)))
  const mid = () => num(withDigits(rng, between(rng, 4, 7)))
  const shape = rng.int(4)
  if (shape === 0) return bin("*", big(), mid())
  if (shape === 1) return bin("+", bin("*", big(), mid()), big())
  if (shape === 2) return bin("-", bin("*", big(), mid()), bin("*", mid(), mid()))
  return bin("*", bin("+", big(), big()), mid())
}

// ---------------------------------------------------------------------------
// Level 4: word problems. Each step template may use `{k}`, the tool's output of
// step k, so a later step needs an earlier result.

type WordTemplate = (rng: Rng) => Draft

const word = (template: string, question: string, steps: ReadonlyArray<string>, answer: bigint): Draft => ({
  question,
  answer,
  steps,
  family: "word-problem",
  tags: { template, steps: steps.length },
})

const WORD_TEMPLATES: ReadonlyArray<WordTemplate> = [
  (rng) => {
    const a = between(rng, 1000, 9999)
    const b = between(rng, 100, Math.min(999, a - 1))
    const k = between(rng, 2, 9)
    return word(
      "shop",
      `A shop has ${a} apples, sells ${b}, then buys ${k} times as many as it sold. How many apples does it have now?`,
      [`${a}-${b}`, `{0}+${k}*${b}`],
      BigInt(a - b + k * b),
    )
  },
  (rng) => {
    const n = between(rng, 12, 99)
    const m = between(rng, 12, 99)
    const p = between(rng, 3, 12)
    const total = n * m
    // Each student's share q is drawn first so the division is exact and something is given away.
    const q = between(rng, Math.ceil((total * 0.6) / p), Math.floor((total - 1) / p))
    const g = total - q * p
    return word(
      "pens",
      `There are ${n} boxes with ${m} pens each. ${g} pens are given away and the rest are shared equally by ${p} students. How many pens does each student get?`,
      [`${n}*${m}`, `{0}-${g}`, `{1}/${p}`],
      BigInt(q),
    )
  },
  (rng) => {
    const a = between(rng, 120, 999)
    const w = between(rng, 12, 52)
    const b = between(rng, 100, a * w - 1)
    const k = between(rng, 2, 9)
    return word(
      "savings",
      `Ana saves ${a} dollars a week for ${w} weeks, then spends ${b} dollars. Her brother saves ${k} times what she has left. How many dollars does her brother save?`,
      [`${a}*${w}`, `{0}-${b}`, `{1}*${k}`],
      BigInt((a * w - b) * k),
    )
  },
  (rng) => {
    const v = between(rng, 45, 180)
    const h = between(rng, 2, 12)
    const u = between(rng, 45, 180)
    const g = between(rng, 2, 12)
    return word(
      "train",
      `A train travels ${v} km per hour for ${h} hours, then ${u} km per hour for ${g} hours. How many km does it travel in total?`,
      [`${v}*${h}`, `${u}*${g}`, `{0}+{1}`],
      BigInt(v * h + u * g),
    )
  },
  (rng) => {
    const a = between(rng, 150, 999)
    const d = between(rng, 5, 30)
    const q = between(rng, 6, 24)
    const total = a * d
    const c = between(rng, Math.ceil((total * 0.8) / q), Math.floor((total - 1) / q))
    const p = total - c * q
    return word(
      "factory",
      `A factory makes ${a} parts a day. After ${d} days, ${p} parts are found faulty. The good parts are packed ${q} to a crate. How many crates are filled?`,
      [`${a}*${d}`, `{0}-${p}`, `{1}/${q}`],
      BigInt(c),
    )
  },
]

/** The names of the level-4 templates, in the order they are drawn from. */
export const WORD_TEMPLATE_NAMES = ["shop", "pens", "savings", "train", "factory"] as const

/** Draw one problem of a level; null when the draw broke a constraint (the caller draws again). */
const draft = (rng: Rng, level: Level): Draft | null => {
  if (level === 4) return pick(rng, WORD_TEMPLATES)(rng)
  const e = level === 1 ? level1(rng) : level === 2 ? level2(rng) : level === 3 ? level3(rng) : level5(rng)
  // Level 3 is about parentheses: a tree whose rendering needs none is drawn again.
  if (level === 3 && !render(e).includes("(")) return null
  const value = evaluate(e)
  return value === null ? null : expressionDraft(e, value)
}

/**
 * One problem of a level, drawn from `rng` (no split filtering).
 *
 * @example
 * const p = generateProblem(Rng.fromSeed(1), 3)   // e.g. { question: "(48+7)*13-256=?", ... }
 */
export const generateProblem = (rng: Rng, level: Level): Problem => {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const d = draft(rng, level)
    if (d === null) continue
    return {
      id: `arith-L${level}-${questionDigest(d.question)}`,
      question: d.question,
      answer: canonicalAnswer(d.answer),
      difficulty: level,
      family: d.family,
      tags: { level, ...d.tags },
      steps: d.steps,
    }
  }
  throw new TaskConfigError({ fn: "generateProblem", problem: `no valid level-${level} problem in 1000 draws` })
}

// ---------------------------------------------------------------------------
// Phrasings

/**
 * How an expression question is worded: always `EXPR=?` ("bare"); one of the training
 * {@link PHRASINGS} on both sides ("varied"); or training phrasings for training and
 * held-out phrasings for evaluation ("varied-unseen"). "templates" and
 * "templates-unseen" do the same with the many {@link TEMPLATES}, where a held-out
 * template is a combination of parts that training templates use apart.
 */
export type Phrasing = "bare" | "varied" | "varied-unseen" | "templates" | "templates-unseen"

/**
 * The wordings of an expression question, each on one side of the split: with
 * "varied-unseen" a held-out problem is always asked in a held-out wording, so held-out
 * accuracy measures how a policy handles phrasings it never saw in training.
 */
export const PHRASINGS: ReadonlyArray<{ readonly name: string; readonly split: Split; readonly ask: (expression: string) => string }> = [
  { name: "equals", split: "train", ask: (e) => `${e}=?` },
  { name: "what-is", split: "train", ask: (e) => `What is ${e}?` },
  { name: "compute", split: "train", ask: (e) => `Compute ${e}.` },
  { name: "evaluate", split: "train", ask: (e) => `Evaluate ${e}.` },
  { name: "how-much", split: "train", ask: (e) => `How much is ${e}?` },
  { name: "calculate", split: "heldout", ask: (e) => `Calculate ${e}.` },
  { name: "value-of", split: "heldout", ask: (e) => `Find the value of ${e}.` },
  { name: "result", split: "heldout", ask: (e) => `What is the result of ${e}?` },
]

const TEMPLATE_OPENERS: ReadonlyArray<readonly [string, string]> = [["", ""], ["please", "Please: "], ["q", "Q: "], ["quick", "Quick question. "], [
  "hi",
  "Hi! ",
]]
const TEMPLATE_CLOSERS: ReadonlyArray<readonly [string, string]> = [["", ""], ["thanks", " Thanks."], ["number", " Reply with a number."], [
  "exact",
  " Be exact.",
]]

/**
 * Question templates: an opener, one of the eight {@link PHRASINGS}' wordings, and a
 * closer ("Q: What is 482*97? Be exact."), 160 in all. One template in five is held out,
 * chosen so that each (wording, closer) pair has exactly one held-out opener (and the bare
 * `EXPR=?` stays in training): every part
 * of a held-out template occurs in training templates, only the combination is new. So
 * held-out accuracy under "templates-unseen" measures whether a policy finds the
 * expression in a question it has never seen in that form.
 */
export const TEMPLATES: ReadonlyArray<{ readonly name: string; readonly split: Split; readonly ask: (expression: string) => string }> = PHRASINGS
  .flatMap((core, c) =>
    TEMPLATE_OPENERS.flatMap(([opener, before], o) =>
      TEMPLATE_CLOSERS.map(([closer, after], l) => ({
        name: [opener, core.name, closer].filter((part) => part !== "").join("/"),
        split: (o + 2 * c + 3 * l + 1) % 5 === 0 ? ("heldout" as const) : ("train" as const),
        ask: (e: string) => `${before}${core.ask(e)}${after}`,
      }))
    )
  )

/** A problem asked in one of `wordings` (word problems keep their own text). */
const rephrase = (problem: Problem, wordings: typeof PHRASINGS, rng: Rng): Problem => {
  const expression = problem.family === "arithmetic" ? /^(.*)=\?$/.exec(problem.question)?.[1] : undefined
  if (expression === undefined) return problem
  const phrasing = pick(rng, wordings)
  return { ...problem, question: phrasing.ask(expression), tags: { ...problem.tags, phrasing: phrasing.name } }
}

/** Options of {@link generateProblems}. */
export interface ProblemGenerateOptions {
  /** Seed of the generator; the same seed gives the same problems. */
  readonly seed: number
  /** How many problems to return. */
  readonly count: number
  /** Levels to draw from, used in turn (problem i has level levels[i % levels.length]); default all. */
  readonly levels?: ReadonlyArray<number>
  /** Which side of the partition to draw from. */
  readonly split: Split
  /** Share of all questions that belong to the held-out side (default 0.2). */
  readonly heldoutFraction?: number
  /** "bare" (default): `EXPR=?`; "varied": a training phrasing; "varied-unseen": the split's own {@link PHRASINGS}; "templates", "templates-unseen": the same with {@link TEMPLATES}. */
  readonly phrasings?: Phrasing
}

/**
 * A deterministic list of distinct problems from one side of the train/held-out split.
 *
 * @example
 * const train = generateProblems({ seed: 1, count: 1000, levels: [1, 2, 3], split: "train" })
 * const test = generateProblems({ seed: 1, count: 200, levels: [1, 2, 3], split: "heldout" })
 * // no question of `test` occurs in `train`
 */
export const generateProblems = (options: ProblemGenerateOptions): Array<Problem> => {
  // The split is decided on the expression, so no expression is asked on both sides in different words.
  const problems = drawFromSplit("generateProblems", options, LEVELS, 50, (rng, level) => generateProblem(rng, level as Level))
  if ((options.phrasings ?? "bare") === "bare") return problems
  // A separate stream, so the expressions drawn are the same with either phrasing.
  const rng = Rng.fromSeed(options.seed ^ 0x5a17)
  const unseen = options.phrasings === "varied-unseen" || options.phrasings === "templates-unseen"
  const side: Split = unseen ? options.split : "train"
  const all = options.phrasings === "templates" || options.phrasings === "templates-unseen" ? TEMPLATES : PHRASINGS
  const wordings = all.filter((p) => p.split === side)
  return problems.map((problem) => rephrase(problem, wordings, rng))
}

/**
 * The loop both built-in generators share: check the options, then draw problems level
 * by level (problem i has level levels[i % levels.length]) until `count` distinct
 * questions from the requested side of the split are found. Each problem gets a budget
 * of draws (`drawsPerProblem` scaled by the rarer side's share), since a small level can
 * run out of distinct questions; running out is an error naming the level.
 */
export const drawFromSplit = <P extends { readonly question: string }>(
  fn: string,
  options: ProblemGenerateOptions,
  known: ReadonlyArray<number>,
  drawsPerProblem: number,
  draw: (rng: Rng, level: number) => P,
): Array<P> => {
  const levels = options.levels ?? known
  const fraction = options.heldoutFraction ?? 0.2
  if (!Number.isInteger(options.count) || options.count < 0) {
    throw new TaskConfigError({ fn, problem: `count must be a non-negative integer, got ${options.count}` })
  }
  if (levels.length === 0) throw new TaskConfigError({ fn, problem: "levels is empty" })
  for (const l of levels) if (!known.includes(l)) throw new TaskConfigError({ fn, problem: `level ${l} is not one of ${known.join(", ")}` })
  if (!(fraction > 0 && fraction < 1)) {
    throw new TaskConfigError({ fn, problem: `heldoutFraction must be in (0, 1), got ${fraction}` })
  }

  const rng = Rng.fromSeed(options.seed)
  const seen = new Set<string>()
  const out: Array<P> = []
  const budget = Math.ceil(drawsPerProblem / Math.min(fraction, 1 - fraction))
  while (out.length < options.count) {
    const level = levels[out.length % levels.length]!
    let found: P | null = null
    for (let attempt = 0; attempt < budget && found === null; attempt++) {
      const p = draw(rng, level)
      if (!seen.has(p.question) && splitOf(p.question, fraction) === options.split) found = p
    }
    if (found === null) {
      throw new TaskConfigError({
        fn,
        problem: `could not find a new ${options.split} problem of level ${level} after ${budget} draws (${out.length} found); ask for fewer`,
      })
    }
    seen.add(found.question)
    out.push(found)
  }
  return out
}
