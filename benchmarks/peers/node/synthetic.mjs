// The synthetic model's text, the same tokens as server/backends/synthetic_text.py's
// synthetic_tokens(prompt): Python's random.Random (MT19937 seeded from the first 8
// bytes of the prompt's SHA-256, randint/choice/random as CPython 3.11 computes them)
// in JavaScript, so every server of the benchmark says exactly the same words.
import { createHash } from "node:crypto";

const WORDS = (
  "the a stream token server client event socket browser model reply prompt answer " +
  "quick steady small careful bright simple honest latency message signal packet " +
  "buffer flush connection transport network window frame line field value order " +
  "each every one two three first last next early late fast slow clear open close " +
  "reads writes sends carries keeps moves starts ends waits resumes streams returns " +
  "and or but so then while when because after before until with without through " +
  "over under into onto from across between around within of to in on at by for " +
  "is was are were has had can will may should must does did " +
  "café naïve über façade piñata résumé"
).split(" ");
const MIN_TOKENS = 40;
const MAX_TOKENS = 220;
const capitalize = (word) => word.charAt(0).toUpperCase() + word.slice(1);

/** CPython's Mersenne Twister, seeded as random.Random(int) seeds it. */
class PythonRandom {
  constructor(seed) {
    const key = [];
    let rest = BigInt(seed);
    do {
      key.push(Number(rest & 0xffffffffn));
      rest >>= 32n;
    } while (rest > 0n);
    this.state = new Uint32Array(624);
    this.index = 624;
    this.initByArray(key);
  }

  initGenrand(s) {
    const mt = this.state;
    mt[0] = s >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.index = 624;
  }

  initByArray(key) {
    const mt = this.state;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(624, key.length); k; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) + key[j] + j) >>> 0;
      i++;
      j++;
      if (i >= 624) {
        mt[0] = mt[623];
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = 623; k; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) - i) >>> 0;
      i++;
      if (i >= 624) {
        mt[0] = mt[623];
        i = 1;
      }
    }
    mt[0] = 0x80000000;
  }

  uint32() {
    const mt = this.state;
    if (this.index >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7fffffff);
        mt[k] = mt[(k + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.index = 0;
    }
    let y = mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  random() {
    const a = this.uint32() >>> 5;
    const b = this.uint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  belowN(n) {
    // _randbelow_with_getrandbits: k = n.bit_length(), redraw while r >= n
    const k = 32 - Math.clz32(n);
    let r = this.uint32() >>> (32 - k);
    while (r >= n) r = this.uint32() >>> (32 - k);
    return r;
  }

  randint(low, high) {
    return low + this.belowN(high - low + 1);
  }

  choice(items) {
    return items[this.belowN(items.length)];
  }
}

function rngFor(key) {
  const digest = createHash("sha256").update(key, "utf8").digest();
  return new PythonRandom(digest.readBigUInt64BE(0));
}

/** The full token sequence for ``prompt`` (before any max_tokens cut). */
export function syntheticTokens(prompt) {
  const rng = rngFor(prompt);
  const total = rng.randint(MIN_TOKENS, MAX_TOKENS);
  const tokens = [];
  let sentenceLeft = 0;
  while (tokens.length < total) {
    if (sentenceLeft === 0) {
      if (tokens.length) {
        tokens.push(".");
        if (rng.random() < 0.15) tokens.push("\n\n");
        if (tokens.length >= total) break;
      }
      sentenceLeft = rng.randint(5, 14);
      const word = rng.choice(WORDS);
      const first = !tokens.length || tokens[tokens.length - 1] === "\n\n";
      tokens.push(first ? capitalize(word) : " " + capitalize(word));
    } else {
      if (rng.random() < 0.07) tokens.push(",");
      tokens.push(" " + rng.choice(WORDS));
    }
    sentenceLeft -= 1;
  }
  return tokens.slice(0, total);
}

/** What the model would say to a one-message chat: its tokens, why it stopped, usage. */
export function syntheticReply(prompt, maxTokens) {
  const all = syntheticTokens(prompt);
  const tokens = all.slice(0, maxTokens);
  const promptTokens = prompt.split(/\s+/).filter(Boolean).length;
  return {
    tokens,
    finishReason: tokens.length < all.length ? "length" : "stop",
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: tokens.length,
      total_tokens: promptTokens + tokens.length,
    },
  };
}
