//! The Accelerator's endpoints and dynamic batching, through the library.

#![allow(clippy::unwrap_used)]

use futures_util::future::join_all;
use ipfs_accelerate::{
    Accelerator, AcceleratorError, BackendKind, EndpointOptions, InferRequest, InferResponse,
};
use ipfs_accelerate_tests::{assert_cosines, bert_reference, fixture_model, loader};
use std::time::Duration;

/// An accelerator over a temp cache, and the bert fixture's model id.
fn accelerator(home: &std::path::Path, options: EndpointOptions) -> (Accelerator, String) {
    let model = fixture_model("bert").to_str().unwrap().to_owned();
    (Accelerator::new(loader(home), options), model)
}

/// Waiting at most `max_wait` for a batch to fill.
fn waiting(max_wait: Duration) -> EndpointOptions {
    EndpointOptions {
        max_wait,
        ..EndpointOptions::default()
    }
}

fn embeddings(r: InferResponse) -> Vec<Vec<f32>> {
    let InferResponse::Embeddings { embeddings, .. } = r else {
        panic!("an embedding endpoint answered another task: {r:?}")
    };
    embeddings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_batch_and_answer_in_order() {
    let home = tempfile::tempdir().unwrap();
    let (acc, model) = accelerator(home.path(), waiting(Duration::from_millis(50)));
    let results = acc
        .init_endpoints(
            &[model.clone(), "./no/such/model".to_owned()],
            &[BackendKind::Cpu],
        )
        .await;
    assert_eq!(results.len(), 2);
    assert!(results.iter().any(|(m, _, r)| m == &model && r.is_ok()));
    assert!(
        results.iter().any(|(m, _, r)| m != &model && r.is_err()),
        "one failure does not stop the others"
    );

    let (texts, expected) = bert_reference();
    // Three concurrent requests within one wait window: one batch, each
    // answered with its own vector.
    let calls = texts
        .iter()
        .map(|t| acc.infer(&model, InferRequest::embed([t.clone()])));
    let got: Vec<Vec<f32>> = join_all(calls)
        .await
        .into_iter()
        .map(|answer| embeddings(answer.unwrap()).remove(0))
        .collect();
    assert_cosines("batched", &got, &expected, 0.99999);
    let status = &acc.endpoints()[0];
    assert_eq!(status.backend, BackendKind::Cpu);
    assert_eq!(status.requests, 3);
    assert!(
        status.batch_sizes.count < 3,
        "requests were batched: {:?}",
        status.batch_sizes
    );
    assert!(status.latency_ms.p99.is_some());

    assert!(matches!(
        acc.infer("nosuch", InferRequest::embed(["x"])).await,
        Err(AcceleratorError::UnknownModel { .. })
    ));
    assert!(matches!(
        acc.infer(&model, InferRequest::embed(Vec::<String>::new()))
            .await,
        Err(AcceleratorError::InvalidRequest(_))
    ));
    assert_eq!(acc.remove_endpoint(&model, None), 1);
    assert!(acc.endpoints().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_caller_left_is_not_run() {
    let home = tempfile::tempdir().unwrap();
    let (acc, model) = accelerator(home.path(), waiting(Duration::from_millis(300)));
    acc.add_endpoint(&model, BackendKind::Cpu).await.unwrap();
    // The first caller gives up while its request waits for the batch window.
    let leaver = {
        let acc = acc.clone();
        let model = model.clone();
        tokio::spawn(async move {
            acc.infer(&model, InferRequest::embed(["gone", "also gone"]))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    leaver.abort();
    let stayer = acc
        .infer(&model, InferRequest::embed(["still here"]))
        .await
        .unwrap();
    assert_eq!(embeddings(stayer).len(), 1);
    let batches = &acc.endpoints()[0].batch_sizes;
    assert_eq!(batches.count, 1, "{batches:?}");
    assert_eq!(
        batches.sum, 1.0,
        "only the remaining caller's text ran: {batches:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_busy() {
    let home = tempfile::tempdir().unwrap();
    let options = EndpointOptions {
        max_batch_size: 1,
        max_wait: Duration::ZERO,
        max_queue: 1,
    };
    let (acc, model) = accelerator(home.path(), options);
    acc.add_endpoint(&model, BackendKind::Cpu).await.unwrap();
    let long = "word ".repeat(60);
    let calls: Vec<_> = (0..32)
        .map(|_| acc.infer(&model, InferRequest::embed([long.clone()])))
        .collect();
    let answers = join_all(calls).await;
    let busy = answers
        .iter()
        .filter(|a| matches!(a, Err(AcceleratorError::Busy(_))))
        .count();
    let ok = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(busy + ok, 32, "only busy or answered");
    assert!(
        busy > 0,
        "a queue of one must refuse some of 32 simultaneous requests"
    );
    assert_eq!(acc.endpoints()[0].rejected as usize, busy);
}

/// Embedding requests to a dual encoder that wait together run as one call
/// (CLIP's images as one batch through the vision tower); each caller gets
/// its own vectors, equal to what it gets alone, and a request the model
/// cannot take fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similarity_embeddings_gathered_across_requests_equal_solo_answers() {
    use ipfs_accelerate::media::{read_image, read_wav};
    use ipfs_accelerate::EmbedInput;
    let home = tempfile::tempdir().unwrap();
    let acc = Accelerator::new(loader(home.path()), EndpointOptions::default());
    let clip = fixture_model("clip").to_str().unwrap().to_owned();
    acc.add_endpoint(&clip, BackendKind::Cpu).await.unwrap();
    let mut images = vec![
        read_image(&fixture_model("clip").join("input.png")).unwrap(),
        read_image(&fixture_model("llava").join("input.png")).unwrap(),
    ];
    for frame in ["frame_00.png", "frame_01.png", "frame_02.png"] {
        images.push(read_image(&fixture_model("xclip").join("frames").join(frame)).unwrap());
    }
    let requests: Vec<InferRequest> = images
        .iter()
        .map(|image| InferRequest::EmbedItems {
            items: vec![EmbedInput::Image(image.clone())],
        })
        .chain([InferRequest::embed(["a photo of a cat"])])
        .collect();
    let mut solo = Vec::new();
    for request in &requests {
        solo.push(embeddings(acc.infer(&clip, request.clone()).await.unwrap()));
    }
    // Together: the first runs alone, the rest are gathered into one call.
    let answers = join_all(requests.iter().cloned().map(|r| acc.infer(&clip, r))).await;
    for (i, (answer, want)) in answers.into_iter().zip(&solo).enumerate() {
        let got = embeddings(answer.unwrap());
        ipfs_accelerate_tests::assert_close(&format!("request {i}"), &got[0], &want[0], 1e-5);
    }
    let status = acc.endpoints().remove(0);
    assert!(
        status.batch_sizes.count < status.requests,
        "some requests ran together: {status:?}"
    );

    // A recording is not CLIP's to embed: that request alone fails, and the
    // ones gathered with it are answered as if alone.
    let audio = read_wav(&fixture_model("clap").join("input.wav")).unwrap();
    let bad = InferRequest::EmbedItems {
        items: vec![EmbedInput::Audio(audio)],
    };
    let mut together: Vec<_> = requests.clone();
    together.insert(3, bad);
    let answers = join_all(together.into_iter().map(|r| acc.infer(&clip, r))).await;
    let mut answers = answers.into_iter();
    for (i, want) in solo.iter().enumerate() {
        if i == 3 {
            let refused = answers.next().unwrap();
            assert!(
                matches!(refused, Err(AcceleratorError::Skill(_))),
                "{refused:?}"
            );
        }
        let got = embeddings(answers.next().unwrap().unwrap());
        ipfs_accelerate_tests::assert_close(&format!("request {i}"), &got[0], &want[0], 1e-5);
    }
}

/// Image-to-text through an endpoint: LLaVA's greedy ids equal
/// transformers' reference, streamed pieces join to the text, and another
/// task is refused before it is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caption_endpoint_matches_reference() {
    use ipfs_accelerate::media::read_image;
    use ipfs_accelerate::{GenerateOptions, TextStream};
    let home = tempfile::tempdir().unwrap();
    let acc = Accelerator::new(loader(home.path()), EndpointOptions::default());
    let llava = fixture_model("llava");
    let model = llava.to_str().unwrap().to_owned();
    acc.add_endpoint(&model, BackendKind::Cpu).await.unwrap();
    let reference = ipfs_accelerate_tests::reference("llava");
    let want = ipfs_accelerate_tests::id_list(&reference["generation"]["token_ids"]);
    let (stream, mut pieces) = TextStream::channel();
    let request = InferRequest::Caption {
        image: read_image(&llava.join("input.png")).unwrap(),
        prompt: reference["inputs"]["prompt"].as_str().unwrap().to_owned(),
        options: GenerateOptions {
            max_new_tokens: want.len(),
            ..GenerateOptions::default()
        },
        stream: Some(stream),
    };
    let answer = acc.infer(&model, request).await.unwrap();
    let InferResponse::Generation { generation, .. } = answer else {
        panic!("{answer:?}");
    };
    assert_eq!(generation.token_ids, want);
    let mut streamed = String::new();
    while let Some(piece) = pieces.recv().await {
        streamed.push_str(&piece);
    }
    assert_eq!(streamed, generation.text);
    let refused = acc
        .infer(
            &model,
            InferRequest::generate("hi", GenerateOptions::default()),
        )
        .await;
    assert!(
        matches!(refused, Err(AcceleratorError::WrongTask { .. })),
        "{refused:?}"
    );
}
