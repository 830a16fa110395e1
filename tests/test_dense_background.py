"""The retrieval similarity the refusal gate reads is measured above the embedder's
similarity floor (its median cosine between texts on unrelated topics), and so is the
sentence's own similarity (``sent_dense``), so a gate fitted
on one embedder's cosines reads another's the same way: e5 puts unrelated Chinese text near
0.8, OpenAI's models near 0.2, and the gate's trees split on fixed values."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.answer import AnswerStage
from assistant.chunking import sentence_inputs
from assistant.config import AnswerSettings
from assistant.embedding import similarity_floor
from assistant.evidence import SentenceModel, candidates, default_model
from assistant.gazetteer import Gazetteer
from assistant.prompts import PromptLibrary
from assistant.query import analyze
from assistant.retrieval import Corpus
from assistant.testing import HashEmbedder
from assistant.text import terms
from assistant.types import Chunk, ScoredChunk

TOPICS = [
    "青岭县今年新建村卫生室十二所，乡村医生全部纳入培训。",
    "县医院胸痛中心通过省级验收，急救反应时间缩短到十分钟以内。",
    "全县适龄儿童免疫规划疫苗接种率保持在百分之九十五以上。",
    "老年人健康管理服务覆盖六万余人，建立电子健康档案。",
    "远程会诊平台连通县乡两级，全年会诊八百例。",
]
QUESTION = "青岭县远程会诊平台全年会诊了多少例?"


class Squeezed(HashEmbedder):
    """The hash embedder with a constant extra component: every cosine becomes
    0.7 + 0.3 × the original, so unrelated texts sit near 0.75, as with e5."""

    def _vec(self, text: str) -> np.ndarray:
        v = super()._vec(text)
        return np.asarray(np.r_[np.sqrt(0.3) * v / np.linalg.norm(v), np.sqrt(0.7)], dtype=np.float32)


def _dense(embedder: HashEmbedder) -> tuple[float, float, float]:
    """(the answering chunk's raw cosine, the dense signal the gate reads for its sentence,
    and the sentence's own cosine above the floor, ``sent_dense``)."""
    text = TOPICS[4]
    chunk = Chunk(chunk_id="c4", doc_id="d", text=text, start=0, end=len(text), section_path=(), heading="",
                  title="青岭县卫生健康工作总结", city="青岭县", doc_years=(2024,), year=2024, role="review",
                  departments=(), token_count=len(text), embed_text=text, source_path="d.txt")
    corpus = Corpus.build([chunk], [terms(text)], "v1")
    cosine = float(embedder.embed_passages([text])[0] @ embedder.embed_query(QUESTION))
    info = analyze(QUESTION, corpus_cities=["青岭县"], corpus_years=[2024], gazetteer=Gazetteer.default())
    q = embedder.embed_query(QUESTION)

    def similarity(c: Chunk, texts: list[str]) -> list[float]:
        return [float(x) for x in embedder.embed_passages(sentence_inputs(c)) @ q]

    cands = candidates(info, [ScoredChunk(chunk, 1.0, dense_rank=0, dense_score=cosine)], corpus.keyword, terms,
                       similarity=similarity, floor=similarity_floor(embedder))
    return cosine, cands[0].feature("dense"), cands[0].feature("sent_dense")


def test_the_dense_signal_reads_the_same_whichever_embedder_scaled_the_cosines() -> None:
    raw_a, dense_a, sent_a = _dense(HashEmbedder())
    raw_b, dense_b, sent_b = _dense(Squeezed())
    assert raw_b - raw_a > 0.2  # the two embedders' cosines differ a lot
    assert dense_a > 0.1 and dense_b == pytest.approx(dense_a, abs=1e-3)  # the signal does not
    assert sent_a > 0.1 and sent_b == pytest.approx(sent_a, abs=1e-3)  # nor the sentence's own


def _stage(model: SentenceModel, embedder: HashEmbedder) -> AnswerStage:
    return AnswerStage(AnswerSettings(), PromptLibrary(), None, terms, model=model, embedder=embedder)


def test_the_floor_comes_from_the_model_for_its_own_embedder_and_is_measured_for_another() -> None:
    emb = HashEmbedder()
    fitted = SentenceModel(default_model().weights, 0.0, 0.5, meta=(("embedder", emb.model_id), ("floor", 0.123)))
    stage = _stage(fitted, emb)
    assert stage.floor == 0.123 and emb.calls == 0  # recorded at calibration: nothing embedded
    other = HashEmbedder(model="hash:other")
    assert _stage(fitted, other).floor == pytest.approx(similarity_floor(HashEmbedder()))
    assert AnswerStage(AnswerSettings(), PromptLibrary(), None, terms, model=fitted).floor == 0.0
