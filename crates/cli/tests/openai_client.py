"""The official OpenAI Python client against `ipfs-accelerate serve`.

Run by `crates/cli/tests/openai_client.rs` with the venv Python that
`cargo xtask ci` makes (`IPFS_ACCELERATE_OPENAI_PYTHON`):

    python openai_client.py BASE_URL EXPECTED_JSON

BASE_URL is the server's `http://127.0.0.1:PORT` (`/v1` is added when it
is not there). EXPECTED_JSON holds the answers the Rust driver computed
through the command line; each section below runs only when its key is
there, so the driver decides what is checked. Uses only the `openai`
package (no other HTTP client); prints one line per check passed and
raises AssertionError (non-zero exit) on the first mismatch.
"""

import json
import sys

import openai
from openai import OpenAI

TOLERANCE = 1e-4


def passed(what):
    print(f"ok: {what}", flush=True)


def max_abs_diff(got, want):
    got, want = list(got), list(want)
    assert len(got) == len(want), f"length {len(got)} != expected {len(want)}"
    return max((abs(float(g) - float(w)) for g, w in zip(got, want)), default=0.0)


def assert_close(what, got, want):
    diff = max_abs_diff(got, want)
    assert diff <= TOLERANCE, f"{what}: max abs diff {diff} > {TOLERANCE}"


def check_models(client, expected):
    listed = [model.id for model in client.models.list()]
    for model in expected["models"]:
        assert model in listed, f"models.list(): {model!r} not in {listed}"
    passed(f"models.list() lists all {len(expected['models'])} models")


def chat_request(chat):
    return dict(
        model=chat["model"],
        messages=[{"role": "user", "content": chat["prompt"]}],
        max_tokens=chat["max_tokens"],
        temperature=0,
    )


def check_chat(client, chat):
    answer = client.chat.completions.create(**chat_request(chat))
    assert answer.choices, f"chat: no choices in {answer}"
    choice = answer.choices[0]
    assert (
        choice.message.content == chat["text"]
    ), f"chat: content {choice.message.content!r} != expected {chat['text']!r}"
    assert choice.finish_reason in (
        "stop",
        "length",
    ), f"chat: finish_reason {choice.finish_reason!r}"
    assert answer.usage is not None, f"chat: no usage in {answer}"
    assert (
        answer.usage.completion_tokens > 0
    ), f"chat: completion_tokens {answer.usage.completion_tokens}"
    if "prompt_tokens" in chat:
        assert (
            answer.usage.prompt_tokens == chat["prompt_tokens"]
        ), f"chat: prompt_tokens {answer.usage.prompt_tokens} != expected {chat['prompt_tokens']}"
    passed(f"chat.completions.create: {choice.message.content!r} ({choice.finish_reason})")

    stream = client.chat.completions.create(
        **chat_request(chat), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks, "chat stream: no chunks"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert (
        text == choice.message.content
    ), f"chat stream: text {text!r} != non-streamed {choice.message.content!r}"
    finished = [
        c.choices[0].finish_reason
        for c in chunks
        if c.choices and c.choices[0].finish_reason is not None
    ]
    assert len(finished) == 1, f"chat stream: {len(finished)} chunks with a finish_reason: {finished}"
    last = chunks[-1]
    assert last.usage is not None, f"chat stream: the last chunk has no usage: {last}"
    assert last.choices == [], f"chat stream: the usage chunk has choices: {last.choices}"
    assert (
        last.usage.completion_tokens == answer.usage.completion_tokens
    ), f"chat stream: completion_tokens {last.usage.completion_tokens} != non-streamed {answer.usage.completion_tokens}"
    passed(f"chat.completions.create(stream=True): {len(chunks)} chunks, same text, usage last")


def check_completion(client, completion):
    answer = client.completions.create(
        model=completion["model"],
        prompt=completion["prompt"],
        max_tokens=completion["max_tokens"],
        temperature=0,
    )
    text = answer.choices[0].text
    assert text == completion["text"], f"completions: text {text!r} != expected {completion['text']!r}"
    passed(f"completions.create: {text!r}")


def check_embed(client, embed):
    answer = client.embeddings.create(model=embed["model"], input=embed["texts"])
    want = embed["vectors"]
    assert len(answer.data) == len(want), f"embeddings: {len(answer.data)} vectors for {len(want)} texts"
    for i, (item, vector) in enumerate(zip(answer.data, want)):
        assert item.index == i, f"embeddings: data[{i}].index is {item.index}"
        assert_close(f"embeddings: data[{i}]", item.embedding, vector)
    passed(f"embeddings.create: {len(want)} vectors within {TOLERANCE}")


def check_image_embed(client, image):
    answer = client.embeddings.create(model=image["model"], input=[{"image": image["data_url"]}])
    assert len(answer.data) == 1, f"image embeddings: {len(answer.data)} vectors for 1 image"
    assert answer.data[0].index == 0, f"image embeddings: index {answer.data[0].index}"
    assert_close("image embeddings", answer.data[0].embedding, image["vector"])
    passed(f"embeddings.create(image): within {TOLERANCE}")


def check_transcription(client, transcription):
    def create(**extra):
        with open(transcription["file"], "rb") as audio:
            return client.audio.transcriptions.create(
                model=transcription["model"], file=audio, **extra
            )

    want = transcription["text"]
    answer = create()
    assert answer.text == want, f"transcription: text {answer.text!r} != expected {want!r}"
    passed(f"audio.transcriptions.create: {answer.text!r}")

    text = create(response_format="text")
    assert isinstance(text, str), f"transcription (text): got {type(text).__name__}, not str"
    # The server may end the plain text with a newline, as OpenAI does.
    assert (
        text.rstrip("\n") == want
    ), f"transcription (text): {text!r} != expected {want!r}"
    passed("audio.transcriptions.create(response_format='text')")

    verbose = create(response_format="verbose_json")
    assert verbose.text == want, f"transcription (verbose_json): text {verbose.text!r} != expected {want!r}"
    duration = getattr(verbose, "duration", None)
    assert (
        isinstance(duration, float) and duration > 0
    ), f"transcription (verbose_json): duration {duration!r} is not a positive float"
    passed(f"audio.transcriptions.create(response_format='verbose_json'): duration {duration}")

    srt = create(response_format="srt")
    assert isinstance(srt, str), f"transcription (srt): got {type(srt).__name__}, not str"
    assert srt == transcription["srt"], f"transcription (srt): {srt!r} != expected {transcription['srt']!r}"
    passed("audio.transcriptions.create(response_format='srt')")

    timed = create(response_format="verbose_json", timestamp_granularities=["segment"])
    want_segments = transcription["segments"]
    assert timed.segments is not None and len(timed.segments) == len(
        want_segments
    ), f"transcription (segments): {timed.segments!r} != expected {want_segments!r}"
    for got, want_segment in zip(timed.segments, want_segments):
        for field in ["start", "end"]:
            # The expected times went through serde_json's float parsing,
            # which may be one ulp off.
            assert abs(getattr(got, field) - want_segment[field]) < 1e-9, (
                f"transcription (segments): {field} {getattr(got, field)!r} != expected {want_segment[field]!r}"
            )
        for field in ["id", "seek", "text", "tokens"]:
            assert getattr(got, field) == want_segment[field], (
                f"transcription (segments): {field} {getattr(got, field)!r} != expected {want_segment[field]!r}"
            )
    passed(f"audio.transcriptions.create(timestamp_granularities=['segment']): {len(want_segments)} segments")


def check_vision(client, vision):
    answer = client.chat.completions.create(
        model=vision["model"],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": vision["data_url"]}},
                    {"type": "text", "text": vision["prompt"]},
                ],
            }
        ],
        max_tokens=vision["max_tokens"],
        temperature=0,
    )
    content = answer.choices[0].message.content
    assert content == vision["text"], f"vision chat: content {content!r} != expected {vision['text']!r}"
    passed(f"chat.completions.create(image_url): {content!r}")


def check_similarity(client, similarity):
    # A relative path is joined onto the client's base URL (…/v1/); an
    # absolute URL is used as it is.
    path = similarity.get("path", "/similarity")
    answer = client.post(
        path,
        body={
            "model": similarity["model"],
            "texts": similarity["texts"],
            "image": similarity["data_url"],
        },
        cast_to=object,
    )
    assert isinstance(answer, dict), f"similarity: not a JSON object: {answer!r}"
    assert_close("similarity: logits", answer["logits"], similarity["logits"])
    assert_close("similarity: probs", answer["probs"], similarity["probs"])
    passed(f"post({path!r}): logits and probs within {TOLERANCE}")


def check_errors(client, expected):
    chat = {"model": "no-such-model", "prompt": "hello", "max_tokens": 2}
    try:
        client.chat.completions.create(**chat_request(chat))
    except openai.NotFoundError as e:
        passed(f"an unknown model: NotFoundError ({e.message})")
    else:
        raise AssertionError("chat with model 'no-such-model': no NotFoundError")

    if "no_template_model" in expected:
        chat = {"model": expected["no_template_model"], "prompt": "hello", "max_tokens": 2}
        try:
            client.chat.completions.create(**chat_request(chat))
        except openai.BadRequestError as e:
            assert "chat template" in str(e), f"chat without a template: message {e.message!r}"
            passed(f"a model without a chat template: BadRequestError ({e.message})")
        else:
            raise AssertionError(
                f"chat with {expected['no_template_model']!r} (no chat template): no BadRequestError"
            )


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} BASE_URL EXPECTED_JSON")
    base_url, expected_path = sys.argv[1].rstrip("/"), sys.argv[2]
    if not base_url.endswith("/v1"):
        base_url += "/v1"
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    print(f"openai {openai.__version__} against {base_url}", flush=True)
    client = OpenAI(
        base_url=base_url,
        api_key=expected.get("api_key", "unused"),
        # A failure is reported as it is, never retried.
        max_retries=0,
        timeout=300,
    )
    if "models" in expected:
        check_models(client, expected)
    if "chat" in expected:
        check_chat(client, expected["chat"])
    if "completion" in expected:
        check_completion(client, expected["completion"])
    if "embed" in expected:
        check_embed(client, expected["embed"])
    if "image_embed" in expected:
        check_image_embed(client, expected["image_embed"])
    if "transcription" in expected:
        check_transcription(client, expected["transcription"])
    if "vision" in expected:
        check_vision(client, expected["vision"])
    if "similarity" in expected:
        check_similarity(client, expected["similarity"])
    if "errors" in expected or "no_template_model" in expected:
        check_errors(client, expected)
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
