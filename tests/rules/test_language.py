"""Language consistency (R1): share of chain-of-thought words in the target language."""

from __future__ import annotations

import pickle

import pytest

from rewardkit.errors import ConfigError
from rewardkit.registry import build_reward
from rewardkit.rules.language import (
    LanguageConsistencyReward,
    count_languages,
    detect_language,
    language_consistency,
    normalize_language,
)
from rewardkit.types import Sample, Score, Unscored

# One realistic chain-of-thought sentence per language; each must be all-target.
MONOLINGUAL = [
    ("en", "Let me think. Each box holds 12 eggs, so 3 boxes hold 36 eggs in total."),
    ("fr", "Réfléchissons. Chaque boîte contient 12 œufs, donc les 3 boîtes en contiennent 36."),
    ("de", "Also, jede Schachtel hat 12 Eier, und die drei Schachteln haben zusammen 36 Eier."),
    ("es", "Pensemos. Cada caja tiene 12 huevos, así que las 3 cajas tienen 36 huevos en total."),
    ("it", "Ragioniamo. Ogni scatola ha 12 uova, quindi le 3 scatole hanno 36 uova in totale."),
    ("pt", "Vamos pensar. Cada caixa tem 12 ovos, então as 3 caixas têm 36 ovos no total."),
    ("nl", "Eens kijken. Elke doos heeft 12 eieren, dus de 3 dozen hebben samen 36 eieren."),
    ("zh", "让我想想。每盒有12个鸡蛋，所以3盒一共有36个鸡蛋。"),
    ("ja", "考えてみます。一箱に卵が12個あるので、3箱で36個です。"),
    ("ko", "생각해 보자. 한 상자에 달걀이 12개 있으니 세 상자에는 36개가 있다."),
    ("ru", "Подумаем. В каждой коробке 12 яиц, значит в трёх коробках 36 яиц."),
    ("ar", "لنفكر. في كل صندوق 12 بيضة، إذن في ثلاثة صناديق 36 بيضة."),
    ("he", "בוא נחשוב. בכל קופסה יש 12 ביצים, ולכן בשלוש קופסאות יש 36 ביצים."),
    ("el", "Ας σκεφτούμε. Κάθε κουτί έχει 12 αυγά, άρα τα τρία κουτιά έχουν 36 αυγά."),
    ("hi", "सोचते हैं। हर डिब्बे में 12 अंडे हैं, तो तीन डिब्बों में 36 अंडे हैं।"),
]


@pytest.mark.parametrize(("lang", "text"), MONOLINGUAL)
def test_monolingual_text_is_fully_consistent_and_detected(lang: str, text: str) -> None:
    assert language_consistency(text, lang) == 1.0
    assert detect_language(text) == lang
    # ... and fully inconsistent with a language of another script or word stock.
    other = "zh" if lang != "zh" and lang != "ja" else "en"
    assert language_consistency(text, other) == 0.0


@pytest.mark.parametrize(
    ("text", "target", "expected"),
    [
        # CJK + Latin: 4 Han characters + 4 English words.
        ("首先计算。Then the answer is 5.", "zh", 4 / 8),
        ("首先计算。Then the answer is 5.", "en", 4 / 8),
        # Latin languages told apart per sentence: 4 English words, 5 French words.
        ("First, compute the total. Ensuite, on divise par deux.", "en", 4 / 9),
        ("First, compute the total. Ensuite, on divise par deux.", "fr", 5 / 9),
        # English and Spanish: 5 + 5 words.
        ("So the answer is ten. Entonces la respuesta es diez.", "es", 5 / 10),
        # German sentence in an Italian CoT: 5 it, 5 de words.
        ("Quindi abbiamo sei mele rosse. Das ist die richtige Antwort.", "it", 5 / 10),
        # Japanese and Chinese: kana marks the Japanese sentence, even its kanji (6);
        # 个 marks the kana-free sentence as Chinese (7).
        ("答えは五です。所以答案是五个。", "ja", 6 / 13),
        ("答えは五です。所以答案是五个。", "zh", 7 / 13),
        # A Korean aside in English: 3 words, 4 Hangul syllables.
        ("The result is 7. 답은 7이다.", "en", 3 / 7),
    ],
)
def test_mixed_language_shares(text: str, target: str, expected: float) -> None:
    assert language_consistency(text, target) == pytest.approx(expected)


@pytest.mark.parametrize(
    "neutral",
    [
        "$\\frac{12}{3} = 4$",
        "$$x^2 + y^2 = z^2$$",
        "\\(a+b\\) and \\[c\\cdot d\\]",  # 'and' is the one English word here
        "`numpy.array`",
        "```python\ndef solve(n):\n    return n * 2\n```",
        "total_eggs = n_boxes * eggsPerBox",
        "f(x) = 3x + 2, x1 = 4",
        "GCD LCM API",
        "α + β = π",
        "12 + 30 = 42 ≥ 40",
        "https://example.com/path?q=1",
        "\\boxed{36}",
    ],
)
def test_language_neutral_material_does_not_count(neutral: str) -> None:
    zh = "所以答案是三十六。"
    with_neutral = f"{zh} {neutral}"
    counts = count_languages(with_neutral, prefer="zh")
    extra = 1 if neutral.startswith("\\(") else 0  # the English "and"
    assert counts.total == count_languages(zh).total + extra
    assert counts.neutral >= 1


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("l'équation est résolue", "fr"),
        ("it's the result we've got", "en"),
        ("dell'equazione è questa", "it"),
        ("Größe übrig", "de"),  # no function word: ß and ü decide
        ("niño pequeño", "es"),
        ("informações são", "pt"),
    ],
)
def test_elisions_and_letters_are_evidence(text: str, lang: str) -> None:
    counts = count_languages(text)
    assert counts.by_language == {lang: len(text.split())}


def test_undetermined_latin_counts_for_a_latin_target_only() -> None:
    text = "Compute product: 6 times 7"  # 'times' is English evidence
    assert count_languages(text).by_language == {"en": 3}
    bare = "Multiply quantities quickly"  # no evidence at all
    counts = count_languages(bare)
    assert counts.undetermined == 3 and counts.by_language == {}
    assert language_consistency(bare, "en") == 1.0
    assert language_consistency(bare, "de") == 1.0
    assert language_consistency(bare, "zh") == 0.0


def test_japanese_kanji_only_sentence_follows_the_text() -> None:
    text = "合計金額\nまず値段を足します。次に割ります。"
    counts = count_languages(text)
    assert set(counts.by_language) == {"ja"}
    assert count_languages("合計金額").by_language == {"zh": 4}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("en", "en"),
        ("en-US", "en"),
        ("EN_gb", "en"),
        ("zh-Hans-CN", "zh"),
        ("Chinese", "zh"),
        ("japanese", "ja"),
        ("pt-BR", "pt"),
        ("iw", "he"),
        ("ko-KR", "ko"),
    ],
)
def test_normalize_language(code: str, expected: str) -> None:
    assert normalize_language(code) == expected


@pytest.mark.parametrize("code", ["xx", "klingon", "", "sv"])
def test_unsupported_language_is_a_config_error(code: str) -> None:
    with pytest.raises(ConfigError, match="unsupported language"):
        LanguageConsistencyReward(target=code)


def reward_score(reward: LanguageConsistencyReward, prompt: str, response: str) -> Score | Unscored:
    return reward.score(Sample(prompt=prompt, response=response))


def test_reward_scores_the_think_block_only() -> None:
    reward = LanguageConsistencyReward(target="en")
    result = reward_score(
        reward,
        "How many eggs?",
        "<think>Each box has 12 eggs. 所以一共36个。</think>答案是36。",
    )
    assert isinstance(result, Score)
    # think block: 4 English words ("Each box has 12 eggs" minus the number) + 5 Han characters
    assert result.details["source"] == "think"
    assert result.details["by_language"] == {"en": 4, "zh": 5}
    assert result.value == pytest.approx(4 / 9)
    assert result.details["target"] == "en"


def test_reward_scope_response_and_opened_think() -> None:
    response = "Each box has 12 eggs.</think>答案是36。"  # template opened <think>
    cot = reward_score(LanguageConsistencyReward(target="en"), "", response)
    whole = reward_score(LanguageConsistencyReward(target="en", scope="response"), "", response)
    assert isinstance(cot, Score) and isinstance(whole, Score)
    assert cot.value == 1.0 and cot.details["source"] == "think"
    assert whole.details["source"] == "response"
    assert whole.value == pytest.approx(4 / 7)  # 4 English words, 3 Han; the tag is neutral


def test_target_from_the_prompt() -> None:
    reward = LanguageConsistencyReward()
    zh_prompt = "小明有3盒鸡蛋，每盒12个，一共有多少个？"
    english_cot = "<think>Each box has twelve eggs, so three boxes have 36.</think>36"
    chinese_cot = "<think>每盒12个，3盒就是36个。</think>36"
    bad = reward_score(reward, zh_prompt, english_cot)
    good = reward_score(reward, zh_prompt, chinese_cot)
    assert isinstance(bad, Score) and bad.value == 0.0 and bad.details["target"] == "zh"
    assert isinstance(good, Score) and good.value == 1.0
    fr = reward_score(reward, "Combien d'œufs y a-t-il dans les boîtes ?", english_cot)
    assert isinstance(fr, Score) and fr.details["target"] == "fr" and fr.value == 0.0


@pytest.mark.parametrize(
    ("prompt", "response", "reason"),
    [
        ("2 + 2 = ?", "<think>I add them.</think>4", "unknown_target"),
        ("What is 2 + 2?", "<think>$2 + 2 = 4$</think>4", "no_cot_words"),
        ("What is 2 + 2?", "", "no_cot_words"),
    ],
)
def test_explicit_unscored_reasons(prompt: str, response: str, reason: str) -> None:
    result = reward_score(LanguageConsistencyReward(), prompt, response)
    assert isinstance(result, Unscored)
    assert result.reason == reason
    assert result.message


def test_registered_picklable_and_in_range() -> None:
    reward = build_reward("language_consistency", target="zh-CN")
    assert isinstance(reward, LanguageConsistencyReward) and reward.target == "zh"
    clone = pickle.loads(pickle.dumps(reward))
    assert (clone.target, clone.scope) == ("zh", "cot")
    assert clone.value_range == (0.0, 1.0)
    with pytest.raises(ConfigError, match="scope"):
        build_reward("language_consistency", scope="everything")
