/**
 * The task selection of llama-perplexity, reproduced draw for draw: std::mt19937 seeded with 1,
 * libstdc++'s uniform_int_distribution (HellaSwag) and the float-scaled pick (Winogrande,
 * multiple choice), so that a subset is the same subset llama.cpp's published figures used.
 */

/** std::mt19937 (32-bit Mersenne Twister), as the C++ standard defines it. */
export class Mt19937 {
  private readonly state = new Uint32Array(624);
  private index = 624;

  constructor(seed: number) {
    this.state[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = this.state[i - 1]! ^ (this.state[i - 1]! >>> 30);
      // 1812433253 * prev + i, modulo 2^32, without losing bits to doubles.
      this.state[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  static readonly max = 0xffffffff;

  next(): number {
    if (this.index >= 624) this.twist();
    let y = this.state[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const s = this.state;
    for (let i = 0; i < 624; i++) {
      const y = (s[i]! & 0x80000000) | (s[(i + 1) % 624]! & 0x7fffffff);
      s[i] = s[(i + 397) % 624]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }
}

/**
 * std::uniform_int_distribution<size_t>(0, n - 1)(rng) as libstdc++ (GCC 11 and later) computes it
 * for a 32-bit engine: Lemire's multiply-and-reject. Valid for n <= 2^32.
 */
export function uniformBelow(rng: Mt19937, n: number): number {
  const range = BigInt(n);
  let product = BigInt(rng.next()) * range;
  let low = product & 0xffffffffn;
  if (low < range) {
    const threshold = ((1n << 32n) - range) % range;
    while (low < threshold) {
      product = BigInt(rng.next()) * range;
      low = product & 0xffffffffn;
    }
  }
  return Number(product >> 32n);
}

/**
 * `int(scale * rng() * n)` with `float scale = 1 / (1.f + (float)rng.max())`, every step in float
 * as perplexity.cpp writes it for Winogrande and multiple choice.
 */
export function floatScaledPick(rng: Mt19937, n: number): number {
  const f32 = Math.fround;
  const scale = f32(1 / f32(1 + f32(Mt19937.max)));
  // A draw that rounds up to 2^32 would give n (out of range in llama.cpp too); keep it in range.
  return Math.min(n - 1, Math.trunc(f32(f32(scale * f32(rng.next())) * f32(n))));
}

/** Picks `count` of `total` indexes the way winogrande_score and multiple_choice_score do. */
export function pickWithoutReplacement(total: number, count: number): number[] {
  const rng = new Mt19937(1);
  const aux = Array.from({ length: total }, (_, i) => i);
  const picked: number[] = [];
  for (let i = 0; i < count; i++) {
    const j = floatScaledPick(rng, aux.length);
    picked.push(aux[j]!);
    aux[j] = aux[aux.length - 1]!;
    aux.pop();
  }
  return picked;
}

/**
 * HellaSwag's order: always shuffled (even when every task is used), each draw uniform over the
 * tasks not yet taken, taken ones removed in place (so later indexes shift down).
 */
export function hellaswagOrder(total: number, count: number): number[] {
  const rng = new Mt19937(1);
  const left = Array.from({ length: total }, (_, i) => i);
  const order: number[] = [];
  for (let i = 0; i < Math.min(count, total); i++) {
    const k = uniformBelow(rng, left.length);
    order.push(left[k]!);
    left.splice(k, 1);
  }
  return order;
}
