/**
 * Answer extraction, canonical forms and checking.
 *
 * Answers are compared as exact rationals held in BigInt, so integers of any size
 * compare exactly ("9007199254740993" is not "9007199254740992") and fractions
 * compare by value ("6/8" is "3/4" is "0.75"). A tolerance (1e-9 relative) applies
 * only when one side was written as a decimal, because a tool prints 1/3 as
 * 0.3333333333333333. Strings that are not numbers compare by their trimmed,
 * case-folded text. An empty answer is never correct.
 *
 * Accepted number forms: optional sign, leading "$", digits with thousands
 * commas ("1,234,567") or underscores ("1_000"), leading zeros, decimals
 * (".5", "2.", "0.75"), exponents ("1e3", "1.5e-7", as JavaScript prints them) and
 * fractions ("-3/4"). GSM8K's "#### 42" is read as "42".
 *
 * @category models
 */

/** An exact rational: num/den with den > 0 (not necessarily reduced). */
interface Rational {
  readonly num: bigint
  readonly den: bigint
  /** Written with a decimal point or an exponent (so tolerance applies). */
  readonly inexact: boolean
}

// Exponents beyond this are rejected rather than expanded: "1e999999999" must not
// allocate a billion-digit BigInt.
const MAX_EXPONENT = 400

const INTEGER = /^(\d+(?:_\d+)*|\d{1,3}(?:,\d{3})+)$/
const DECIMAL = /^(\d+(?:_\d+)*|\d{1,3}(?:,\d{3})+)?(?:\.(\d+)?)?(?:[eE]([+-]?\d+))?$/

const pow10 = (k: number): bigint => 10n ** BigInt(k)

const abs = (x: bigint): bigint => (x < 0n ? -x : x)

const gcd = (a: bigint, b: bigint): bigint => {
  let x = abs(a)
  let y = abs(b)
  while (y !== 0n) [x, y] = [y, x % y]
  return x
}

/** Parse an unsigned decimal or integer (no fraction bar); null when not a number. */
const parseUnsigned = (s: string): Rational | null => {
  if (INTEGER.test(s)) return { num: BigInt(s.replace(/[,_]/g, "")), den: 1n, inexact: false }
  const m = DECIMAL.exec(s)
  if (m === null) return null
  const intPart = (m[1] ?? "").replace(/[,_]/g, "")
  const fracPart = m[2] ?? ""
  if (intPart === "" && fracPart === "") return null // ".", "e5", ""
  const exp = m[3] === undefined ? 0 : Number(m[3])
  if (Math.abs(exp) > MAX_EXPONENT) return null
  let num = BigInt((intPart === "" ? "0" : intPart) + fracPart)
  let den = pow10(fracPart.length)
  if (exp >= 0) num *= pow10(exp)
  else den *= pow10(-exp)
  return { num, den, inexact: true }
}

/** Strip a GSM8K "####" marker and surrounding whitespace. */
const stripMarker = (s: string): string => {
  const at = s.lastIndexOf("####")
  return (at >= 0 ? s.slice(at + 4) : s).trim()
}

/**
 * Parse an answer string as an exact rational; null when it is not a number.
 *
 * @example
 * parseNumber("1,000")  // { num: 1000n, den: 1n, inexact: false }
 * parseNumber("6/8")    // { num: 6n, den: 8n, inexact: false }
 * parseNumber("apple")  // null
 */
export const parseNumber = (text: string): Rational | null => {
  let s = stripMarker(text).replace(/\s*\/\s*/, "/")
  let sign = 1n
  if (s.startsWith("-") || s.startsWith("+")) {
    if (s.startsWith("-")) sign = -1n
    s = s.slice(1)
  }
  if (s.startsWith("$")) s = s.slice(1)
  if (s === "") return null
  const bar = s.indexOf("/")
  if (bar >= 0) {
    // A fraction: both sides integers (a decimal over a decimal is not an answer form).
    const top = s.slice(0, bar)
    const bottom = s.slice(bar + 1)
    if (!INTEGER.test(top) || !INTEGER.test(bottom)) return null
    const den = BigInt(bottom.replace(/[,_]/g, ""))
    if (den === 0n) return null
    return { num: sign * BigInt(top.replace(/[,_]/g, "")), den, inexact: false }
  }
  const r = parseUnsigned(s)
  return r === null ? null : { ...r, num: sign * r.num }
}

const sameRational = (a: Rational, b: Rational): boolean => {
  const lhs = a.num * b.den
  const rhs = b.num * a.den
  if (lhs === rhs) return true
  if (!a.inexact && !b.inexact) return false
  // |a - b| <= 1e-9 * max(|a|, |b|), cross-multiplied so it stays exact.
  return abs(lhs - rhs) * 1_000_000_000n <= (abs(lhs) > abs(rhs) ? abs(lhs) : abs(rhs))
}

const foldText = (s: string): string => s.trim().replace(/\s+/g, " ").toLowerCase()

/**
 * Whether a given answer matches the expected one (numbers by value, else text).
 *
 * @example
 * checkAnswer("1,000", "1000")   // true
 * checkAnswer("0.5", "1/2")      // true
 * checkAnswer("-3", "3")         // false
 * checkAnswer("#### 42", "42")   // true
 * checkAnswer("", "")            // false
 */
export const checkAnswer = (given: string, expected: string): boolean => {
  const g = stripMarker(given)
  const e = stripMarker(expected)
  if (g === "" || e === "") return false
  const gn = parseNumber(g)
  const en = parseNumber(e)
  if (gn !== null && en !== null) return sameRational(gn, en)
  if (gn !== null || en !== null) return false
  return foldText(g) === foldText(e)
}

/**
 * The final answer in a policy's text: the last `<answer>...</answer>`, else the
 * text after the last "####" up to the end of its line; null when neither exists
 * (an unterminated `<answer>` does not count).
 *
 * @example
 * extractFinalAnswer("<code>2+2</code>\n<output>4</output>\n<answer>4</answer>") // "4"
 * extractFinalAnswer("She has 72 clips.\n#### 72")                              // "72"
 */
export const extractFinalAnswer = (text: string): string | null => {
  const tagged = [...text.matchAll(/<answer>([\s\S]*?)<\/answer>/g)]
  const last = tagged[tagged.length - 1]
  if (last !== undefined) return (last[1] ?? "").trim()
  const at = text.lastIndexOf("####")
  if (at < 0) return null
  const line = (text.slice(at + 4).split("\n")[0] ?? "").trim()
  return line === "" ? null : line
}

const renderRational = (num: bigint, den: bigint): string => {
  const g = gcd(num, den)
  let n = num / g
  let d = den / g
  if (d < 0n) [n, d] = [-n, -d]
  if (d === 1n) return n.toString()
  // Terminating decimals (denominator 2^a 5^b) print as decimals, others as a/b.
  let twos = 0
  let fives = 0
  let rest = d
  while (rest % 2n === 0n) [rest, twos] = [rest / 2n, twos + 1]
  while (rest % 5n === 0n) [rest, fives] = [rest / 5n, fives + 1]
  if (rest !== 1n) return `${n}/${d}`
  const places = Math.max(twos, fives)
  const scaled = abs(n) * (pow10(places) / d)
  const digits = scaled.toString().padStart(places + 1, "0")
  const sign = n < 0n ? "-" : ""
  return `${sign}${digits.slice(0, digits.length - places)}.${digits.slice(digits.length - places)}`
}

/**
 * The canonical string of an answer: integers without separators or leading
 * zeros, terminating values as decimals, others as reduced fractions; text that is
 * not a number is trimmed (with a GSM8K "####" stripped).
 *
 * @example
 * canonicalAnswer("#### 1,000")  // "1000"
 * canonicalAnswer("6/8")         // "0.75"
 * canonicalAnswer("2/6")         // "1/3"
 * canonicalAnswer(-0.5)          // "-0.5"
 * canonicalAnswer(12n)           // "12"
 */
export const canonicalAnswer = (x: string | number | bigint): string => {
  if (typeof x === "bigint") return x.toString()
  const text = typeof x === "number" ? String(x) : x
  const r = parseNumber(text)
  return r === null ? stripMarker(text) : renderRational(r.num, r.den)
}
