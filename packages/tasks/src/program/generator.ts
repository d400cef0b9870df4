/**
 * The built-in program-synthesis task: seeded function-writing problems at four
 * graded levels, each with a reference solution, a plausible wrong solution, one
 * worked example in the prompt and hidden unit tests.
 *
 * - Level 1: arithmetic functions of one number with a constant: `add(x)`: x plus 7.
 * - Level 2: string and list manipulation: repeat, count a letter, reverse, sum, map, filter.
 * - Level 3: loops and conditions: largest, count vowels, 1+..+n, fizz, count evens.
 * - Level 4: simple recursion: factorial, Fibonacci, power, digit sum, gcd.
 *
 * Templates with a constant (`K`) are the harder ones for a small model: the
 * description names the constant, and the code must copy it. Expected values of the
 * tests and the example come from running the reference solution, so the tests and
 * the reference cannot disagree.
 *
 * Train and held-out sets are disjoint by construction, as for the arithmetic task:
 * a problem's split is a hash of its specification text (with its example), and each
 * set keeps only the specifications that hash into it. Templates are shared between
 * the sides; held-out problems differ in constants and examples.
 *
 * @category constructors
 */
import { Rng } from "@turnwise/core"
import { drawFromSplit } from "../arithmetic.js"
import type { ProblemGenerateOptions } from "../arithmetic.js"
import { specificationText } from "./problem.js"
import type { CodeProblem } from "./problem.js"

/** The difficulty levels of the program-synthesis generator. */
export const PROGRAM_LEVELS = [1, 2, 3, 4] as const
export type ProgramLevel = (typeof PROGRAM_LEVELS)[number]

type Value = number | string | boolean | ReadonlyArray<number>

/** One family of problems. `K` is the template's constant (absent for templates without one). */
interface Template {
  readonly name: string
  readonly level: ProgramLevel
  readonly entry: string
  readonly signature: string
  /** Draw the constant, or null for a template without one. */
  readonly constant: ((rng: Rng) => number | string) | null
  readonly describe: (K: number | string) => string
  readonly solve: (K: number | string) => string
  readonly bug: (K: number | string) => string
  /** Draw the arguments of one call. */
  readonly input: (rng: Rng) => ReadonlyArray<Value>
}

const between = (rng: Rng, lo: number, hi: number): number => lo + rng.int(hi - lo + 1)
const word = (rng: Rng, letters: string, lo: number, hi: number): string =>
  Array.from({ length: between(rng, lo, hi) }, () => letters[rng.int(letters.length)]!).join("")
const numbers = (rng: Rng, lo: number, hi: number, maxValue: number): Array<number> => Array.from({ length: between(rng, lo, hi) }, () => rng.int(maxValue + 1))

const none = null
const number = (lo: number, hi: number) => (rng: Rng) => [between(rng, lo, hi)]

const templates: ReadonlyArray<Template> = [
  // Level 1: arithmetic with a constant.
  {
    name: "add",
    level: 1,
    entry: "add",
    signature: "add(x)",
    constant: (r) => between(r, 2, 19),
    describe: (K) => `return x plus ${K}.`,
    solve: (K) => `function add(x){return x+${K}}`,
    bug: (K) => `function add(x){return x-${K}}`,
    input: number(0, 50),
  },
  {
    name: "times",
    level: 1,
    entry: "times",
    signature: "times(x)",
    constant: (r) => between(r, 2, 9),
    describe: (K) => `return x times ${K}.`,
    solve: (K) => `function times(x){return x*${K}}`,
    bug: (K) => `function times(x){return x+${K}}`,
    input: number(1, 30),
  },
  {
    name: "minus",
    level: 1,
    entry: "minus",
    signature: "minus(x)",
    constant: (r) => between(r, 2, 19),
    describe: (K) => `return x minus ${K}.`,
    solve: (K) => `function minus(x){return x-${K}}`,
    bug: (K) => `function minus(x){return ${K}-x}`,
    input: number(20, 60),
  },
  {
    name: "divisible",
    level: 1,
    entry: "divisible",
    signature: "divisible(n)",
    constant: (r) => between(r, 2, 9),
    describe: (K) => `return true if n is divisible by ${K}.`,
    solve: (K) => `function divisible(n){return n%${K}===0}`,
    bug: (K) => `function divisible(n){return n%${K}===1}`,
    input: number(0, 60),
  },
  {
    name: "cap",
    level: 1,
    entry: "cap",
    signature: "cap(x)",
    constant: (r) => between(r, 5, 50),
    describe: (K) => `return x, but at most ${K}.`,
    solve: (K) => `function cap(x){return Math.min(x,${K})}`,
    bug: (K) => `function cap(x){return Math.max(x,${K})}`,
    input: number(0, 60),
  },
  // Level 2: strings and lists.
  {
    name: "rep",
    level: 2,
    entry: "rep",
    signature: "rep(s)",
    constant: (r) => between(r, 2, 4),
    describe: (K) => `return s repeated ${K} times.`,
    solve: (K) => `function rep(s){return s.repeat(${K})}`,
    bug: (K) => `function rep(s){return s+${K}}`,
    input: (r) => [word(r, "abcxyz", 1, 3)],
  },
  {
    name: "count",
    level: 2,
    entry: "count",
    signature: "count(s)",
    constant: (r) => "abcde"[r.int(5)]!,
    describe: (K) => `return how many times "${K}" occurs in s.`,
    solve: (K) => `function count(s){return s.split("${K}").length-1}`,
    bug: (K) => `function count(s){return s.indexOf("${K}")}`,
    input: (r) => [word(r, "abcde", 3, 8)],
  },
  {
    name: "rev",
    level: 2,
    entry: "rev",
    signature: "rev(s)",
    constant: none,
    describe: () => "return s reversed.",
    solve: () => `function rev(s){return s.split("").reverse().join("")}`,
    bug: () => `function rev(s){return s.split("").join("")}`,
    input: (r) => [word(r, "abcdefgh", 2, 6)],
  },
  {
    name: "sum",
    level: 2,
    entry: "sum",
    signature: "sum(a)",
    constant: none,
    describe: () => "return the sum of the numbers in a.",
    solve: () => `function sum(a){return a.reduce((t,x)=>t+x,0)}`,
    bug: () => `function sum(a){return a.length}`,
    input: (r) => [numbers(r, 1, 5, 20)],
  },
  {
    name: "scale",
    level: 2,
    entry: "scale",
    signature: "scale(a)",
    constant: (r) => between(r, 2, 9),
    describe: (K) => `return a with each number times ${K}.`,
    solve: (K) => `function scale(a){return a.map(x=>x*${K})}`,
    bug: (K) => `function scale(a){return a.map(x=>x+${K})}`,
    input: (r) => [numbers(r, 1, 4, 12)],
  },
  {
    name: "above",
    level: 2,
    entry: "above",
    signature: "above(a)",
    constant: (r) => between(r, 2, 9),
    describe: (K) => `return the numbers in a greater than ${K}.`,
    solve: (K) => `function above(a){return a.filter(x=>x>${K})}`,
    bug: (K) => `function above(a){return a.filter(x=>x<${K})}`,
    input: (r) => [numbers(r, 2, 6, 12)],
  },
  {
    name: "head",
    level: 2,
    entry: "head",
    signature: "head(s)",
    constant: (r) => between(r, 1, 4),
    describe: (K) => `return the first ${K} characters of s.`,
    solve: (K) => `function head(s){return s.slice(0,${K})}`,
    bug: (K) => `function head(s){return s.slice(${K})}`,
    input: (r) => [word(r, "abcdefgh", 5, 8)],
  },
  // Level 3: loops and conditions.
  {
    name: "largest",
    level: 3,
    entry: "largest",
    signature: "largest(a)",
    constant: none,
    describe: () => "return the largest number in a.",
    solve: () => `function largest(a){return Math.max(...a)}`,
    bug: () => `function largest(a){return a[0]}`,
    input: (r) => [numbers(r, 2, 6, 50)],
  },
  {
    name: "vowels",
    level: 3,
    entry: "vowels",
    signature: "vowels(s)",
    constant: none,
    describe: () => "return how many vowels (aeiou) s has.",
    solve: () => `function vowels(s){return s.replace(/[^aeiou]/g,"").length}`,
    bug: () => `function vowels(s){return s.replace(/[^aei]/g,"").length}`,
    input: (r) => [word(r, "abeiouxyz", 3, 8)],
  },
  {
    name: "sumTo",
    level: 3,
    entry: "sumTo",
    signature: "sumTo(n)",
    constant: none,
    describe: () => "return 1+2+...+n.",
    solve: () => `function sumTo(n){let t=0;for(let i=1;i<=n;i++)t+=i;return t}`,
    bug: () => `function sumTo(n){let t=0;for(let i=1;i<n;i++)t+=i;return t}`,
    input: number(1, 40),
  },
  {
    name: "fizz",
    level: 3,
    entry: "fizz",
    signature: "fizz(n)",
    constant: (r) => between(r, 3, 7),
    describe: (K) => `return "fizz" if n is divisible by ${K}, else n as a string.`,
    solve: (K) => `function fizz(n){return n%${K}===0?"fizz":String(n)}`,
    bug: (K) => `function fizz(n){return n%${K}===0?"fizz":n}`,
    input: number(1, 40),
  },
  {
    name: "evens",
    level: 3,
    entry: "evens",
    signature: "evens(a)",
    constant: none,
    describe: () => "return how many even numbers a has.",
    solve: () => `function evens(a){return a.filter(x=>x%2===0).length}`,
    bug: () => `function evens(a){return a.filter(x=>x%2===1).length}`,
    input: (r) => [numbers(r, 2, 6, 20)],
  },
  // Level 4: simple recursion.
  {
    name: "fact",
    level: 4,
    entry: "fact",
    signature: "fact(n)",
    constant: none,
    describe: () => "return n factorial, recursively.",
    solve: () => `function fact(n){return n<2?1:n*fact(n-1)}`,
    bug: () => `function fact(n){return n<2?0:n*fact(n-1)}`,
    input: number(0, 10),
  },
  {
    name: "fib",
    level: 4,
    entry: "fib",
    signature: "fib(n)",
    constant: none,
    describe: () => "return the n-th Fibonacci number, fib(0)=0, fib(1)=1.",
    solve: () => `function fib(n){return n<2?n:fib(n-1)+fib(n-2)}`,
    bug: () => `function fib(n){return n<2?1:fib(n-1)+fib(n-2)}`,
    input: number(2, 15),
  },
  {
    name: "power",
    level: 4,
    entry: "power",
    signature: "power(b, e)",
    constant: none,
    describe: () => "return b to the power e, recursively.",
    solve: () => `function power(b,e){return e===0?1:b*power(b,e-1)}`,
    bug: () => `function power(b,e){return e===0?0:b*power(b,e-1)}`,
    input: (r) => [between(r, 2, 5), between(r, 0, 5)],
  },
  {
    name: "digits",
    level: 4,
    entry: "digits",
    signature: "digits(n)",
    constant: none,
    describe: () => "return the sum of the digits of n, recursively.",
    solve: () => `function digits(n){return n<10?n:n%10+digits(Math.floor(n/10))}`,
    bug: () => `function digits(n){return n<10?0:n%10+digits(Math.floor(n/10))}`,
    input: number(10, 9999),
  },
  {
    name: "gcd",
    level: 4,
    entry: "gcd",
    signature: "gcd(a, b)",
    constant: none,
    describe: () => "return the greatest common divisor of a and b.",
    solve: () => `function gcd(a,b){return b===0?a:gcd(b,a%b)}`,
    bug: () => `function gcd(a,b){return b===0?b:gcd(b,a%b)}`,
    input: (r) => [between(r, 2, 60), between(r, 2, 60)],
  },
]

/** Names of the templates, by level. */
export const PROGRAM_TEMPLATES: Readonly<Record<ProgramLevel, ReadonlyArray<string>>> = {
  1: templates.filter((t) => t.level === 1).map((t) => t.name),
  2: templates.filter((t) => t.level === 2).map((t) => t.name),
  3: templates.filter((t) => t.level === 3).map((t) => t.name),
  4: templates.filter((t) => t.level === 4).map((t) => t.name),
}

/** Hidden tests per generated problem. */
export const TESTS_PER_PROBLEM = 5

const literal = (value: unknown): string => JSON.stringify(value)
const callText = (entry: string, args: ReadonlyArray<Value>): string => `${entry}(${args.map(literal).join(", ")})`

/** Our own reference code, run on the host to compute expected values (trusted: we wrote it). */
const compile = (source: string, entry: string): (...args: ReadonlyArray<Value>) => unknown =>
  new Function(`"use strict";${source};return ${entry}`)() as (...args: ReadonlyArray<Value>) => unknown

const digest = (text: string): string => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0
  return h.toString(16).padStart(8, "0")
}

/**
 * One problem of a level, drawn from `rng`.
 *
 * @example
 * const p = generateCodeProblem(Rng.fromSeed(1), 1) // e.g. add(x): return x plus 7.
 */
export const generateCodeProblem = (rng: Rng, level: ProgramLevel): CodeProblem => {
  const candidates = templates.filter((t) => t.level === level)
  const template = candidates[rng.int(candidates.length)]!
  const K = template.constant === null ? "" : template.constant(rng)
  const reference = template.solve(K)
  const run = compile(reference, template.entry)
  const exampleArgs = template.input(rng)
  const example = { call: callText(template.entry, exampleArgs), result: literal(run(...exampleArgs)) }
  // Distinct test inputs, different from the example where the input space allows.
  const seen = new Set([literal(exampleArgs)])
  const tests: Array<string> = []
  for (let draw = 0; tests.length < TESTS_PER_PROBLEM && draw < 200; draw++) {
    const args = template.input(rng)
    const key = literal(args)
    if (seen.has(key) && draw < 150) continue
    seen.add(key)
    tests.push(`assert.deepEqual(${callText(template.entry, args)}, ${literal(run(...args))})`)
  }
  const description = template.describe(K)
  const spec = { signature: template.signature, description, examples: [example] }
  const question = specificationText(spec)
  return {
    id: `prog-L${level}-${template.name}-${digest(question)}`,
    question,
    language: "js",
    entryPoint: template.entry,
    signature: template.signature,
    description,
    examples: [example],
    tests,
    reference,
    buggy: template.bug(K),
    difficulty: level,
    family: "program",
    tags: { level, template: template.name },
  }
}

/** Options of {@link generateCodeProblems} (levels are 1..4). */
export type CodeGenerateOptions = ProblemGenerateOptions

/**
 * A deterministic list of distinct problems from one side of the train/held-out split.
 *
 * @example
 * const train = generateCodeProblems({ seed: 1, count: 500, levels: [1, 2], split: "train" })
 * const heldout = generateCodeProblems({ seed: 1, count: 100, levels: [1, 2], split: "heldout" })
 */
export const generateCodeProblems = (options: CodeGenerateOptions): Array<CodeProblem> =>
  drawFromSplit("generateCodeProblems", options, PROGRAM_LEVELS, 100, (rng, level) => generateCodeProblem(rng, level as ProgramLevel))
