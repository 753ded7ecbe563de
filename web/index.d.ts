// Types of the edgelm browser package (index.js).

export interface Progress {
  /** bytes so far (download + cache reads) */
  loaded: number;
  /** bytes in all (the model file, or the sum of its parts) */
  total: number;
  /** 'download' (network), 'cache' (IndexedDB), 'load' (the engine reads the bytes) */
  phase: 'download' | 'cache' | 'load';
}

export interface LoadOptions {
  /** SHA-256 (64 hex digits) of the model file (of the concatenation, for a split model): checked before use */
  sha256?: string;
  onProgress?: (p: Progress) => void;
  /** 'auto' (default): IndexedDB cache keyed by URL + sha256, verified before use; 'none': network only */
  cache?: 'auto' | 'none';
  /** 'auto' (default): up to 4 when the page is crossOriginIsolated, else 1. More than 1 needs COOP/COEP. */
  threads?: 'auto' | number;
  /** KV cache positions (default min(trained context, 4096)) */
  context?: number;
  /** weights in memory (default 'auto', the native CLI's rule: q8_0/q4_0 when every matrix has that type, 'mixed'
   *  when the file is quantized otherwise (Q4_K_M, Q6_K, ...: each matrix in its file type, in place), else f32).
   *  'q8_0'/'q4_0' explicitly: only for a file whose matrices are all of that type (the browser builds convert at
   *  load only to f32). */
  precision?: 'auto' | 'f32' | 'q8_0' | 'q4_0' | 'mixed';
  /** resumes (Range requests) after an interrupted download within one load (default 3) */
  retries?: number;
  /** a response that sends nothing for this long fails (default 30000 ms) */
  timeoutMs?: number;
  /** aborts the load */
  signal?: AbortSignal;
  /** 'auto' (default): the relaxed-SIMD build when the browser validates i16x8.relaxed_dot_i8x16_i7x16_s (its
   *  q4_0 products use it; results are bit-identical), else the SIMD128 one; 'simd128': always the SIMD128 build */
  simd?: 'auto' | 'simd128';
  /** one short forward pass at load (counted in loadMs) so that the first prompt runs optimised wasm code
   *  (browsers optimise hot functions lazily); default true */
  warmUp?: boolean;
  /** where worker.js is (default: next to this module) */
  workerUrl?: string | URL;
}

export interface GenerateOptions {
  /** new tokens at most (default 256) */
  maxTokens?: number;
  /** 0: greedy (default 0.8) */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  /** integer 0..2^53 (default random) */
  seed?: number;
  /** stop strings: the text ends before the first one */
  stop?: string[];
  /** stops the generation within one token */
  signal?: AbortSignal;
}

export interface ChatMessage {
  /** 'system' | 'user' | 'assistant' | ... (1..64 ASCII letters, digits, '_' or '-') */
  role: string;
  content: string;
}

export interface ChatOptions extends GenerateOptions {
  /** a built-in chat template by name ('chatml', 'smollm2', 'llama3', ...) instead of the model's own; needed for a
   *  model whose file has no tokenizer.chat_template */
  chatTemplate?: string;
}

export interface ModelInfo {
  arch: string;
  params: number;
  precision: 'f32' | 'q8_0' | 'q4_0' | 'mixed';
  vocabSize: number;
  context: number;
  trainedContext: number;
  threads: number;
  simd: string;
  /** 'st' (single thread) or 'mt' (pthreads) */
  build: 'st' | 'mt';
  /** the relaxed-SIMD variant of that build runs (kernels ends in 'relaxed-simd') */
  relaxedSimd: boolean;
  kernels: string;
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  fileBytes: number;
  /** the file carries a chat template (GGUF tokenizer.chat_template): chat() works without the chatTemplate option */
  hasChatTemplate: boolean;
  /** the bytes came from the verified IndexedDB cache */
  fromCache: boolean;
}

export interface Stats {
  /** tokens of the prompt (the whole conversation for chat), BOS included */
  promptTokens: number;
  /** of those, already in the KV cache from the previous call (its common prefix): not prefilled again */
  reusedTokens: number;
  /** the prefilled tokens (promptTokens - reusedTokens) per second */
  promptTokPerS: number;
  genTokens: number;
  genTokPerS: number;
  loadMs: number;
  /** the wasm heap's size */
  heapBytes: number;
}

export interface LM {
  readonly info: ModelInfo;
  /** of the last generation */
  readonly stats: Stats;
  /** the token ids of the last (or current) generation */
  readonly lastTokens: Int32Array;
  /** the HTTP requests the load made */
  readonly requests: { url: string; range: string; status: number }[];
  /** the text the chat template rendered for the last chat() call */
  readonly lastPrompt: string | undefined;
  generate(prompt: string, opts?: GenerateOptions): AsyncIterableIterator<string>;
  /** the conversation rendered by the model's chat template (or opts.chatTemplate), then generated as generate()
   *  does; turns that extend the previous conversation reuse its KV cache (stats.reusedTokens) */
  chat(messages: ChatMessage[], opts?: ChatOptions): AsyncIterableIterator<string>;
  complete(prompt: string, opts?: GenerateOptions): Promise<string>;
  tokenize(text: string, opts?: { addSpecial?: boolean }): Promise<Int32Array>;
  detokenize(ids: ArrayLike<number>): Promise<string>;
  unload(): Promise<void>;
}

export function load(source: string | URL | (string | URL)[] | ArrayBuffer | ArrayBufferView | Blob, options?: LoadOptions): Promise<LM>;
export function clearCache(): Promise<void>;
export const version: string;
declare const _default: { load: typeof load; clearCache: typeof clearCache; version: string };
export default _default;
