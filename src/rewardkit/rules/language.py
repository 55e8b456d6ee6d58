"""Language consistency reward (DeepSeek-R1): the share of chain-of-thought words in the
target language.

R1 defines it as "the proportion of target language words in the CoT". Here:

* **The CoT** is the think block (`<think>…</think>`, or the text before `</think>` when the
  chat template opened the block); the whole response when there is none, or with
  `scope="response"`.
* **Words.** Text is NFC-normalised, then language-neutral material is removed and never
  counted either way: fenced and inline code, LaTeX math (`$…$`, `$$…$$`, `\\(…\\)`,
  `\\[…\\]`) and commands, URLs, numbers, symbols, code-like tokens (`snake_case`,
  `camelCase`, `x1`, `f(x)`, `a.b`), all-caps acronyms (`GCD`) and single letters
  (variables). Each Han, kana or Hangul character counts as one word — no segmenter, so
  no jieba or MeCab and the same count on every machine.
* **Script decides** Hangul → ko, kana → ja, Cyrillic → ru, Arabic → ar, Hebrew → he,
  Greek → el (two letters or more; one is a math symbol), Devanagari → hi. Han characters
  are ja in a sentence that also has kana, zh in one with a simplified-only character
  (这, 们, 个 ...); in other kana-free sentences they are ja when at least half of the
  text's CJK sentences are Japanese, zh otherwise. Other scripts count as "other".
* **Latin-script languages** (en, fr, de, es, it, pt, nl) are told apart per sentence by
  word-level evidence: a compact built-in table of each language's most frequent function
  words (plus elisions like `l'`/`dell'`/`'s` and letters like ß, ñ, ã), each word's
  evidence split between the languages that share it. Every Latin word of a sentence gets
  the sentence's language; a sentence with no evidence gets the text's overall Latin
  language; a text with no evidence at all leaves its Latin words *undetermined*, which
  count for a Latin-script target and against any other (a short "Compute the sum" CoT is
  given the benefit of the doubt). Ties go to the target.

Why a built-in table rather than a package: `wordfreq` ships its data offline but is a
57 MB wheel (71 MB installed with its dependencies; measured here 0.4 s to import and
0.9 s more for the first lookups in two languages); language-id models (lingua,
fastText) are larger still and classify whole texts, not words. R1's reward needs word-level counts for a handful of languages, which a
few hundred function words give with no dependency and microseconds per response.

The value is `target words / counted words` in [0, 1], with the counts in `details`. A CoT
with no countable word is `Unscored("no_cot_words")`; with no `target` given, the target
is the prompt's language, and a prompt whose language cannot be told is
`Unscored("unknown_target")`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from rewardkit.errors import ConfigError
from rewardkit.reward import Reward
from rewardkit.text import split_think
from rewardkit.types import RewardResult, Sample, Score, Unscored

__all__ = [
    "LATIN_LANGUAGES",
    "SCRIPT_LANGUAGES",
    "SUPPORTED_LANGUAGES",
    "LanguageConsistencyReward",
    "LanguageCounts",
    "count_languages",
    "detect_language",
    "language_consistency",
    "normalize_language",
]

# ---------------------------------------------------------------------------------------
# Word tables. Frequent function words (and a few words every math CoT uses) per language.
# Kept short on purpose: a word here is *evidence*, so ambiguous content words stay out.
# ---------------------------------------------------------------------------------------
_STOPWORDS: dict[str, str] = {
    "en": """
        the be to of and in that have has had it for not on with he as you do does did at
        this but his by from they we say her she or an will my one all would there their
        what so up out if about who get which go me when make can like no just him know
        take into your some could them see other than then now only its over think also
        back after use two how our work first well way even new want because any these
        give most us is are was were been being let each where why must should may might
        therefore thus since here need find number answer total equal equals step wait
        those very more many much same both such between times plus minus yes okay hmm
        right check second next every gives means i'm it's let's that's don't doesn't
        isn't can't we're 's 't 're 'll 've 'd 'm hence first this substitute
        calculate compute solve so value result each left remaining twice half
    """,
    "fr": """
        le la les de des du un une et est en que qui pour dans ce il ne pas sur se plus
        par au aux avec son sa ses mais ou où on nous vous ils elle elles je tu leur
        leurs cette ces été être avoir fait faire donc alors comme tout tous toutes très
        aussi bien sont ont était peut cela ça dont sans sous entre encore même puis car
        quand chaque nombre réponse calculons étape combien fois égal égale ensuite
        maintenant oui non ainsi l' d' qu' c' n' j' s' m' c'est n'est lorsque
        voici donne reste moitié résultat calculer trouver
    """,
    "de": """
        der die das und ist nicht ein eine einen einem einer eines zu den dem des mit von
        sich auf für im es auch als an er sie wir ihr ich du wie noch nach aus bei wird
        werden wurde sind hat haben hatte oder aber dass daß wenn dann also nur kann
        können muss müssen schon mehr diese dieser dieses jetzt hier über unter zwischen
        durch um zum zur vom beim ja nein man mal gibt gleich insgesamt antwort schritt
        zahl berechnen jede jeder jedes was weil ergebnis bleiben übrig hälfte doppelt
        rechnen wir
    """,
    "es": """
        el la los las de del y que en un una unos unas es por con no para se lo al como
        más pero sus su le ya este esta esto estos estas ese esa eso son entre cuando muy
        sin sobre también me hasta hay donde desde todo todos nos durante uno ni qué
        cuál cuánto cuántos cuántas entonces ahora luego primero respuesta paso calcular
        calculamos tenemos tiene tienen está están era fue sea cada pues así porque igual
        resultado quedan mitad doble
    """,
    "it": """
        il lo la i gli le di da in con su per tra fra un uno una e è che non si ci ne del
        della dei delle degli dello al alla ai alle nel nella nei sul sulla come ma anche
        più questo questa quello quella sono ha hanno abbiamo essere fare quindi allora
        ogni ora poi perché cosa quanto quanti quante risposta passo calcoliamo dobbiamo
        totale uguale dell' all' nell' dall' sull' un' l' c'è risultato restano metà
        doppio
    """,
    "pt": """
        o a os as de do da dos das e que em no na nos nas um uma uns umas é para com não
        por se mais como mas ao aos à às ele ela eles elas seu sua seus suas isso isto
        esse essa este esta foi ser são está estão tem têm temos há já também muito
        quando então agora depois cada cálculo resposta passo vamos porque pelo pela
        pelos pelas num numa você nós até sobre sem ou resultado restam metade dobro
    """,
    "nl": """
        de het een en van in is dat op te zijn voor met die niet aan er maar om ook als
        bij of dan nog wat door naar uit ze zij hij wij we je jij ik worden wordt werd kan
        kunnen moet moeten heeft hebben was waren dit deze zo nu al wel geen meer hoe
        waar omdat dus elke elk antwoord stap berekenen totaal gelijk keer onder tussen
        tot na welke blijven helft dubbel
    """,
}

LATIN_LANGUAGES: tuple[str, ...] = tuple(_STOPWORDS)
SCRIPT_LANGUAGES: tuple[str, ...] = ("zh", "ja", "ko", "ru", "ar", "he", "el", "hi")
SUPPORTED_LANGUAGES: tuple[str, ...] = LATIN_LANGUAGES + SCRIPT_LANGUAGES

# word -> languages it is evidence for (shared words split their weight).
_EVIDENCE: dict[str, frozenset[str]] = {}
for _lang, _words in _STOPWORDS.items():
    for _word in _words.split():
        _EVIDENCE[_word] = _EVIDENCE.get(_word, frozenset()) | {_lang}

# Letters that only some Latin-script languages use.
_LETTER_HINTS: dict[str, frozenset[str]] = {
    ch: frozenset(langs.split())
    for chars, langs in [
        ("ßäöü", "de"),
        ("ñ¿¡", "es"),
        ("ãõ", "pt"),
        ("ç", "fr pt"),
        ("à", "fr it pt"),
        ("èù", "fr it"),
        ("ìò", "it"),
        ("âêô", "fr pt"),
        ("îûëïœ", "fr"),
        ("áíóú", "es pt"),
        ("é", "fr es it pt"),
    ]
    for ch in chars
}

_NAMES: dict[str, str] = {
    "english": "en",
    "french": "fr",
    "german": "de",
    "spanish": "es",
    "italian": "it",
    "portuguese": "pt",
    "dutch": "nl",
    "chinese": "zh",
    "japanese": "ja",
    "korean": "ko",
    "russian": "ru",
    "arabic": "ar",
    "hebrew": "he",
    "greek": "el",
    "hindi": "hi",
    "iw": "he",
    "jp": "ja",
    "kr": "ko",
    "cn": "zh",
}


def normalize_language(code: str) -> str:
    """`"en-US"`, `"zh_Hans"`, `"English"` -> `"en"`, `"zh"`, `"en"`; `ConfigError` if unsupported."""
    if not isinstance(code, str):
        raise ConfigError(f"language must be a string like 'en', got {code!r}")
    key = code.strip().lower().replace("_", "-")
    primary = _NAMES.get(key) or _NAMES.get(key.split("-")[0]) or key.split("-")[0]
    if primary not in SUPPORTED_LANGUAGES:
        raise ConfigError(
            f"unsupported language {code!r}; choose one of {', '.join(SUPPORTED_LANGUAGES)}"
        )
    return primary


# ---------------------------------------------------------------------------------------
# Tokenisation
# ---------------------------------------------------------------------------------------
_NEUTRAL_SPANS = re.compile(
    r"```.*?(?:```|\Z)"  # fenced code, even when the model never closed it
    r"|`[^`\n]+`"  # inline code
    r"|\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)|\$[^$\n]+\$"  # LaTeX math
    r"|\\[A-Za-z]+\*?"  # LaTeX commands outside math (\boxed, \frac)
    r"|https?://\S+|www\.\S+|\S+@\S+\.\w+"  # URLs, e-mail addresses
    r"|</?[A-Za-z][\w-]*>",  # markup tags: <think>, </answer>
    re.DOTALL,
)
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_KANA = r"\u3040-\u30ff\u31f0-\u31ff"
_HANGUL = r"\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
#: One Han, kana or Hangul character (rules/length.py counts CJK words with it too).
CJK_CHAR = re.compile(f"[{_HAN}{_KANA}{_HANGUL}]")
_KANA_CHAR = re.compile(f"[{_KANA}]")
# Simplified-Chinese characters that Japanese does not use (it writes 這/们-less grammar,
# 時, 対, 様, 経 ...): one of them marks a kana-free sentence as Chinese.
_ZH_MARKERS = frozenset(
    "这们么吗呢吧啊哪谁怎个没说还让给过对时现样该应觉经为从并总计题结问钱买卖两块东车长门开关"
    "见听讲读写话语认识记设决调边进运着"
)
_HANGUL_CHAR = re.compile(f"[{_HANGUL}]")
# Sentence ends, in Latin and CJK punctuation; newlines end a sentence too.
_SENTENCE_END = re.compile(r"[.!?;\n。！？；]+")
# Letters, plus the combining vowel signs of Indic and Semitic scripts that \w misses.
_WORD = re.compile(
    r"(?:[^\W\d_]|[\u0900-\u097f\u0591-\u05c7\u064b-\u065f])+(?:['’](?:[^\W\d_])+)*['’]?"
)
# A whitespace token that is code, not prose: snake_case, camelCase, letters glued to
# digits (x1, 3x), calls and attribute access (f(x), np.array), operators between words.
_CODE_LIKE = re.compile(
    r"_|[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z]|[A-Za-z][.(\[=+*/^<>|:][A-Za-z(]|->|::|[{}]"
)


def _script(ch: str) -> str:
    """The script-language of a word's first letter: "latin", a language code, or "other"."""
    cp = ord(ch)
    if ch.isascii() or 0x00C0 <= cp <= 0x024F or 0x1E00 <= cp <= 0x1EFF:
        return "latin"
    if 0x0400 <= cp <= 0x04FF:
        return "ru"
    if 0x0370 <= cp <= 0x03FF or 0x1F00 <= cp <= 0x1FFF:
        return "el"
    if 0x0600 <= cp <= 0x06FF or 0x0750 <= cp <= 0x077F:
        return "ar"
    if 0x0590 <= cp <= 0x05FF:
        return "he"
    if 0x0900 <= cp <= 0x097F:
        return "hi"
    return "other"


def _latin_evidence(word: str) -> frozenset[str]:
    """Languages a lower-cased Latin word is evidence for (empty: no evidence)."""
    word = word.replace("’", "'")
    found = _EVIDENCE.get(word, frozenset())
    if "'" in word:
        head, _, tail = word.partition("'")
        found = (
            found | _EVIDENCE.get(head + "'", frozenset()) | _EVIDENCE.get("'" + tail, frozenset())
        )
    if not found:
        for ch in word:
            hint = _LETTER_HINTS.get(ch)
            if hint:
                found = found | hint
    return found


_Item = tuple[str, str, tuple[tuple[str, float], ...]]
_NEUTRAL: tuple[_Item, ...] = (("neutral", "", ()),)


@functools.lru_cache(maxsize=1 << 16)
def _token_items(raw: str) -> tuple[_Item, ...]:
    """What one whitespace token contributes: (kind, lower-cased word, Latin evidence).

    kind is "latin", "neutral", "han", "kana" or a script language ("ko", "ru", ...).
    Cached: chains of thought repeat the same tokens over and over.
    """
    if len(raw) == 1 and CJK_CHAR.match(raw):
        if _KANA_CHAR.match(raw):
            return (("kana", raw, ()),)
        return (("ko" if _HANGUL_CHAR.match(raw) else "han", raw, ()),)
    if _CODE_LIKE.search(raw):
        return _NEUTRAL
    words = _WORD.findall(raw)
    if not words:
        return _NEUTRAL if any(ch.isdigit() for ch in raw) else ()  # a number, or symbols
    items: list[_Item] = []
    for word in words:
        script = _script(word[0])
        if script == "latin":
            if (len(word) == 1 and word.isascii()) or (len(word) > 1 and word.isupper()):
                items.append(_NEUTRAL[0])  # a variable (x, n) or an acronym (GCD); not è or à
                continue
            lower = word.lower()
            langs = _latin_evidence(lower)
            items.append(("latin", lower, tuple((lang, 1 / len(langs)) for lang in sorted(langs))))
        elif script == "el" and len(word) == 1:
            items.append(_NEUTRAL[0])  # α, π: math, not Greek
        else:
            items.append((script, word, ()))
    return tuple(items)


class _Sentence:
    """Tallies of one sentence; a plain slotted class, one is made per sentence."""

    __slots__ = ("counts", "evidence", "han", "kana", "latin", "zh_marked")

    def __init__(self) -> None:
        self.latin: list[str] = []
        self.evidence: dict[str, float] = {}
        self.han = 0
        self.kana = 0
        self.zh_marked = False
        self.counts: dict[str, int] = {}  # script-decided words


@dataclass(frozen=True, slots=True)
class LanguageCounts:
    """Words per language in a text; `undetermined` Latin words had no language evidence."""

    by_language: dict[str, int]
    undetermined: int
    neutral: int

    @property
    def total(self) -> int:
        return sum(self.by_language.values()) + self.undetermined


def _pick(
    evidence: Mapping[str, float], prefer: str | None, fallback: str | None = None
) -> str | None:
    if not evidence:
        return None
    best = max(evidence.values())
    tied = [lang for lang in LATIN_LANGUAGES if evidence.get(lang, 0) >= best - 1e-9]
    for choice in (prefer, fallback):
        if choice in tied:
            return choice
    return tied[0]


def count_languages(text: str, prefer: str | None = None) -> LanguageCounts:
    """Count the words of `text` per language; ambiguous Latin ties go to `prefer`."""
    text = unicodedata.normalize("NFC", text)
    neutral = 0

    def blank(match: re.Match[str]) -> str:
        nonlocal neutral
        neutral += 1
        return " "

    text = _NEUTRAL_SPANS.sub(blank, text)
    text = CJK_CHAR.sub(lambda m: f" {m.group()} ", text)  # every CJK character is a word
    sentences: list[_Sentence] = []
    for chunk in _SENTENCE_END.split(text):
        sentence = _Sentence()
        for raw in chunk.split():
            for kind, word, weights in _token_items(raw):
                if kind == "latin":
                    sentence.latin.append(word)
                    for lang, weight in weights:
                        sentence.evidence[lang] = sentence.evidence.get(lang, 0.0) + weight
                elif kind == "neutral":
                    neutral += 1
                elif kind == "han":
                    sentence.han += 1
                    sentence.zh_marked = sentence.zh_marked or word in _ZH_MARKERS
                else:
                    if kind == "kana":
                        sentence.kana += 1
                        kind = "ja"
                    sentence.counts[kind] = sentence.counts.get(kind, 0) + 1
        if sentence.latin or sentence.han or sentence.counts:
            sentences.append(sentence)

    kana_sentences = sum(1 for s in sentences if s.kana)
    han_only_sentences = sum(1 for s in sentences if s.han and not s.kana and not s.zh_marked)
    han_default = "ja" if kana_sentences and kana_sentences >= han_only_sentences else "zh"
    overall: defaultdict[str, float] = defaultdict(float)
    for s in sentences:
        for lang, weight in s.evidence.items():
            overall[lang] += weight
    text_latin = _pick(overall, prefer)

    counts: Counter[str] = Counter()
    undetermined = 0
    for s in sentences:
        counts.update(s.counts)
        if s.han:
            counts["ja" if s.kana else "zh" if s.zh_marked else han_default] += s.han
        if s.latin:
            chosen = _pick(s.evidence, prefer, text_latin) or text_latin
            if chosen is None:
                undetermined += len(s.latin)
            else:
                counts[chosen] += len(s.latin)
    return LanguageCounts(dict(counts), undetermined, neutral)


def detect_language(text: str) -> str | None:
    """The language most words of `text` are in; None when it cannot be told."""
    counts = count_languages(text)
    known = {lang: n for lang, n in counts.by_language.items() if lang in SUPPORTED_LANGUAGES}
    if not known:
        return None
    return max(known, key=lambda lang: (known[lang], -SUPPORTED_LANGUAGES.index(lang)))


def language_consistency(text: str, target: str) -> float | None:
    """Share of the words of `text` in `target` (R1's language consistency); None: no words."""
    target = normalize_language(target)
    counts = count_languages(text, prefer=target)
    return _matched(counts, target) / counts.total if counts.total else None


def _matched(counts: LanguageCounts, target: str) -> int:
    """Words in the target; undetermined Latin words count for a Latin-script target."""
    matched = counts.by_language.get(target, 0)
    if target in LATIN_LANGUAGES:
        matched += counts.undetermined
    return matched


class LanguageConsistencyReward(Reward):
    """R1's language consistency reward: target-language share of CoT words, in [0, 1]."""

    name: ClassVar[str] = "language_consistency"
    value_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)

    def __init__(
        self, target: str | None = None, scope: Literal["cot", "response"] = "cot"
    ) -> None:
        if scope not in ("cot", "response"):
            raise ConfigError(
                f"language_consistency: scope must be 'cot' or 'response', got {scope!r}"
            )
        self.target = normalize_language(target) if target is not None else None
        self.scope = scope

    def score(self, sample: Sample) -> RewardResult:
        target = self.target or detect_language(sample.prompt)
        if target is None:
            return Unscored(
                "unknown_target",
                "cannot tell the prompt's language; give the reward a target, e.g. target=en",
            )
        cot = split_think(sample.response).reasoning
        source = "think" if cot is not None and self.scope == "cot" else "response"
        text = cot if cot is not None and self.scope == "cot" else sample.response
        counts = count_languages(text, prefer=target)
        if not counts.total:
            return Unscored(
                "no_cot_words", f"no words to count in the {source} (only math, code or nothing)"
            )
        matched = _matched(counts, target)
        details = {
            "target": target,
            "source": source,
            "words": counts.total,
            "target_words": matched,
            "by_language": dict(sorted(counts.by_language.items())),
            "undetermined": counts.undetermined,
            "neutral": counts.neutral,
        }
        return Score(matched / counts.total, "ok", details)
