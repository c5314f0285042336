// Makes the fixture of the tokenizer.json test (hf_tokenizer_test.cpp): a small Llama-3-style
// byte-level BPE tokenizer.json and the ids that Hugging Face's own `tokenizers` library (the
// Rust implementation, through its Node binding) gives for a set of texts.
//
// Run at development time (the test itself needs neither Node nor Python):
//   cd /tmp && npm install tokenizers@0.23.2
//   NODE_PATH=/tmp/node_modules node make_fixture.js   # in this folder
// It writes tokenizer.json and expected.json here.
//
// The vocabulary is the 256 byte-level characters (id = byte value) followed by 400 merges
// trained here by plain BPE (most frequent pair, ties broken by the smaller pair) on the corpus
// below, split with the Llama-3 pattern; then two whole words that no merge builds (so that
// ignore_merges matters), then Llama-3's special tokens and one non-special added token.
// Training is only a way to get plausible merges; the expected ids come from `tokenizers`.
const fs = require("fs");
const path = require("path");
const { Tokenizer } = require("tokenizers");

const LLAMA3_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// The same pattern for JavaScript's engine (no inline (?i:)), used for training only.
const JS_SPLIT =
  /'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

function bytesToUnicode() {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const map = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    map[b] = bs.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + n++);
  }
  return map;
}
const B2U = bytesToUnicode();
const byteLevel = (s) => Array.from(Buffer.from(s, "utf8"), (b) => B2U[b]);

const corpus = `
Patient is a 67-year-old male with a history of hypertension, type 2 diabetes mellitus and
chronic kidney disease who presents with chest pain and shortness of breath. The patient
reports that the pain started two days ago. He's been taking metformin and lisinopril; she'll
follow up in the clinic. Blood pressure was 142/88 mmHg, heart rate 96, temperature 38.4.
The patient was admitted to the hospital for evaluation of the chest pain. Assessment and plan:
continue the current medications, monitor blood glucose, and repeat the labs in the morning.
History of present illness: the patient denies fever, chills, nausea or vomiting. There's no
history of smoking. They've reported that the medication was well tolerated. I'm concerned
about the patient's renal function; we'll adjust the dose. Discharge summary: the patient is
stable and will be discharged home with follow-up in two weeks. Medications: metformin 1000 mg
twice daily, lisinopril 10 mg daily, aspirin 81 mg daily. Allergies: no known drug allergies.
Résumé du patient: hypertension artérielle, diabète de type 2. Der Patient klagt über
Brustschmerzen. 患者は胸痛を訴えています。 高血圧 糖尿病 患者 患者 患者 病院 病院
`;

function train(text, numMerges) {
  const words = new Map();
  for (const m of text.matchAll(JS_SPLIT)) {
    const key = byteLevel(m[0]).join("\u0000");
    words.set(key, (words.get(key) || 0) + 1);
  }
  let entries = [...words].map(([k, c]) => [k.split("\u0000"), c]);
  const merges = [];
  for (let step = 0; step < numMerges; step++) {
    const counts = new Map();
    for (const [syms, c] of entries) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const k = syms[i] + " " + syms[i + 1];
        counts.set(k, (counts.get(k) || 0) + c);
      }
    }
    let best = null;
    for (const [k, c] of counts) {
      if (best === null || c > best[1] || (c === best[1] && k < best[0])) best = [k, c];
    }
    if (best === null) break;
    const [a, b] = best[0].split(" ");
    merges.push([a, b]);
    entries = entries.map(([syms, c]) => {
      const out = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          out.push(a + b);
          i++;
        } else {
          out.push(syms[i]);
        }
      }
      return [out, c];
    });
  }
  return merges;
}

const vocab = {};
B2U.forEach((ch, b) => (vocab[ch] = b));
const merges = train(corpus, 400);
for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = Object.keys(vocab).length;
for (const whole of [" bradycardia", " COVID"]) {
  const t = byteLevel(whole).join("");
  if (t in vocab) throw new Error(t + " already built by merges");
  vocab[t] = Object.keys(vocab).length;
}
const base = Object.keys(vocab).length;
const added = [
  ["<|begin_of_text|>", true],
  ["<|end_of_text|>", true],
  ["<|start_header_id|>", true],
  ["<|end_header_id|>", true],
  ["<|eot_id|>", true],
  ["[MRN]", false],
].map(([content, special], i) => ({
  id: base + i, content, single_word: false, lstrip: false, rstrip: false,
  normalized: false, special,
}));

const tokenizerJson = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: added,
  normalizer: null,
  pre_tokenizer: {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: LLAMA3_PATTERN }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  },
  post_processor: {
    type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true,
  },
  decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: {
    type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: true,
    vocab,
    merges: merges.map(([a, b]) => a + " " + b),  // the "a b" form, as Llama 3's file has it
  },
};

const texts = [
  "Patient is a 67-year-old male with hypertension, type 2 diabetes mellitus and CKD stage 3b.",
  "BP 142/88 mmHg, HR 96 bpm, SpO2 94% on RA. Temp 38.4\u00b0C.",
  "He's been taking metformin 1000mg BID; she'll start lisinopril 10 mg. They've REFUSED. I'D say we'LL see.",
  "'s 't 're 've 'm 'll 'd 'S 'T 'Re 'VE 'M 'lL 'D 'x ''quoted'' don't can'",
  "R\u00e9sum\u00e9: na\u00efve caf\u00e9, \u00c6r\u00f8sk\u00f8bing, Z\u00fcrich \u2014 se\u00f1ora Mu\u00f1oz, e\u0301",
  "\u60a3\u8005\u306f\u9ad8\u8840\u5727\u3067\u3059\u3002\u7cd6\u5c3f\u75c5\u306e\u65e2\u5f80\u3042\u308a\u3002 \ud55c\uad6d\uc5b4 \u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
  "Emoji \ud83d\ude00\ud83d\udc4d\ud83c\udffd and \u2764\ufe0f test \ud83c\udde9\ud83c\uddea!",
  "Line one\nLine two\r\n\r\n  indented\n\n\nend\n",
  "multiple   spaces\t\ttabs   \n  trailing   ",
  "digits 1234567 and 12 345 6789012, phone 555-0123, \u0663\u0664\u0665\u0666 arabic-indic, \u00bd \u00b2 \u2167 x1y22z333w4444",
  "<|begin_of_text|>Hello<|eot_id|> world<|end_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi",
  "[MRN] 00123 [MRN][MRN]<|eot_id",
  "a\u00a0b\u3000c\u2028d\u0085e\u000bf\u001cg \u2003 h",
  "x\u017fy '\u017f 'K it'\u017f it'\u017fs don'T",
  "p\u001c\u001c q\u0085\u0085 r\u00a0\u00a0 s\u001f\u001f\u000b\u000b t \u200b\u200b u\u00ad\u00ad",
  "ignore merges: bradycardia COVID tachycardia  bradycardia",
  "Stop!!!\n\nNext?\r\n...  --> (see above) [1]\t{ok}",
  "",
  " ",
  "\n",
  "   ",
  "\t \n \t",
  "a",
];

async function main() {
  const dir = __dirname;
  const file = path.join(dir, "tokenizer.json");
  fs.writeFileSync(file, JSON.stringify(tokenizerJson, null, 2) + "\n");
  const tok = Tokenizer.fromFile(file);
  const noIgnore = JSON.parse(JSON.stringify(tokenizerJson));
  noIgnore.model.ignore_merges = false;
  const tokNoIgnore = Tokenizer.fromString(JSON.stringify(noIgnore));
  const pre = tok.getPreTokenizer();
  const cases = [];
  for (const text of texts) {
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    const enc2 = await tokNoIgnore.encode(text, null, { addSpecialTokens: false });
    const ids = enc.getIds();
    cases.push({
      text,
      ids,
      ids_without_ignore_merges: enc2.getIds(),
      pieces: text.includes("<|") || text.includes("[MRN]") ? null
                                                           : pre.preTokenizeString(text).map((p) => p[0]),
      decoded: await tok.decode(ids, true),
      decoded_with_special: await tok.decode(ids, false),
    });
  }
  const expected = {
    made_by: "make_fixture.js with the Hugging Face tokenizers library (npm tokenizers " +
      require("tokenizers/package.json").version + ")",
    vocab_size: tok.getVocabSize(true),
    cases,
  };
  // One case a line, so that a change shows as a readable diff.
  const body = expected.cases.map((c) => "  " + JSON.stringify(c)).join(",\n");
  fs.writeFileSync(path.join(dir, "expected.json"),
                   "{\"made_by\": " + JSON.stringify(expected.made_by) + ",\n \"vocab_size\": " +
                   expected.vocab_size + ",\n \"cases\": [\n" + body + "\n]}\n");
  console.log("vocab", expected.vocab_size, "merges", merges.length, "cases", cases.length);
}
main();
