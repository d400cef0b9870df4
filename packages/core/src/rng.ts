/**
 * A small seedable random number generator whose whole state can be saved in a
 * checkpoint and restored, so a resumed run draws the same numbers as an
 * uninterrupted one. The algorithm is xoshiro128** seeded through splitmix32.
 *
 * @category models
 */

/** Serialisable generator state (four 32-bit words). */
export type RngState = readonly [number, number, number, number]

const splitmix32 = (seed: number): () => number => {
  let s = seed >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
}

/**
 * Seeded generator.
 *
 * @example
 * const rng = Rng.fromSeed(42)
 * rng.next()          // uniform in [0, 1)
 * const saved = rng.state()
 * Rng.fromState(saved).next() === rng.next() // true
 */
export class Rng {
  private s: [number, number, number, number]

  private constructor(state: RngState) {
    this.s = [state[0] >>> 0, state[1] >>> 0, state[2] >>> 0, state[3] >>> 0]
    if (this.s.every((w) => w === 0)) this.s[0] = 1 // the all-zero state is a fixed point
  }

  /** A generator from an integer seed. */
  static fromSeed(seed: number): Rng {
    const mix = splitmix32(seed)
    return new Rng([mix(), mix(), mix(), mix()])
  }

  /** A generator that continues from a saved state. */
  static fromState(state: RngState): Rng {
    return new Rng(state)
  }

  /** Continue from a saved state, in place (so holders of this generator follow a restore). */
  restore(state: RngState): void {
    const restored = new Rng(state)
    this.s = restored.s
  }

  /** The current state, to save. */
  state(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]]
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0
    const t = (s[1] << 9) >>> 0
    s[2] = (s[2] ^ s[0]) >>> 0
    s[3] = (s[3] ^ s[1]) >>> 0
    s[1] = (s[1] ^ s[2]) >>> 0
    s[0] = (s[0] ^ s[3]) >>> 0
    s[2] = (s[2] ^ t) >>> 0
    s[3] = rotl(s[3], 11)
    return result
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next()
    const v = this.next()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
  }

  /** A derived, independent generator (for a sub-task such as one sampling call). */
  fork(): Rng {
    return Rng.fromSeed(this.nextUint32())
  }
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0
