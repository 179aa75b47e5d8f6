"""The built-in writer's sentences in English, French, German and Spanish.

Every sentence but the sign-off carries a slot filled from the brief (``{topic}``, ``{audience}``,
``{goal}``, ``{count}``), so no line fits any topic. Slots sit where the brief's words stay grammatical
as the user types them: after a colon (``Das Ziel: den Wasserkreislauf verstehen.``), after a preposition
that takes a bare noun phrase in that language (``sur``, ``sobre``, ``für``), or as an indirect question
(``Ever wondered how volcanoes form?``). German topics are only ever placed after a colon, so the
article's case never changes. Each sentence has one variant per tone family (neutral, playful, serious),
picked by the brief's tone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NEUTRAL, PLAYFUL, SERIOUS = "neutral", "playful", "serious"
# Words a user types as a tone, mapped to the variant family that reads right for it.
TONE_FAMILIES = {
    "playful": PLAYFUL,
    "fun": PLAYFUL,
    "funny": PLAYFUL,
    "friendly": PLAYFUL,
    "casual": PLAYFUL,
    "enthusiastic": PLAYFUL,
    "inspiring": PLAYFUL,
    "ludique": PLAYFUL,
    "drôle": PLAYFUL,
    "locker": PLAYFUL,
    "lustig": PLAYFUL,
    "divertido": PLAYFUL,
    "serious": SERIOUS,
    "formal": SERIOUS,
    "professional": SERIOUS,
    "calm": SERIOUS,
    "sérieux": SERIOUS,
    "formel": SERIOUS,
    "ernst": SERIOUS,
    "sachlich": SERIOUS,
    "serio": SERIOUS,
    "formal ": SERIOUS,
}

Variants = dict[str, str]


@dataclass(frozen=True)
class Phrasebook:
    """One language's sentences. Keys of each ``Variants`` are tone families; ``neutral`` is required."""

    language: str
    # First words that may be lowercased mid-sentence (articles, pronouns, question words...).
    function_words: frozenset[str]
    question_words: frozenset[str]
    # The hook, by the topic's kind: a noun phrase, an indirect question ("how volcanoes form"), a question.
    hook_noun: Variants
    hook_clause: Variants
    question: str  # a topic typed as a question, spoken as one
    # Without key points there is nothing to explain: these say only what the video is about.
    intro_noun: str
    intro_clause: str
    # The same, for a topic whose first word may be a name: the topic opens the sentence.
    lead_topic: str
    intro_topic: str
    audience: Variants
    goal: Variants
    goal_determiner: Variants  # English only: a goal that starts with an article reads as a noun phrase
    preview: Variants
    close_goal: Variants
    close_goal_determiner: Variants
    close_audience: Variants
    close_noun: Variants
    close_clause: Variants
    close_question: Variants
    sign_off: str
    # Lead-ins of the key points: the first, the ones between, the last; "{point}" is the point's sentence.
    lead_first: str
    lead_middle: tuple[str, ...]
    lead_last: str
    # Joins a short sentence to the next one ("Magma rises, and it erupts.").
    join: str
    point_title: str
    close_title: str
    numbers: tuple[str, ...]  # 0..20 as words
    audience_articles: frozenset[str] = field(default_factory=frozenset)
    # Whether the lead-ins take a sentence that starts with a capital (German after a colon).
    lead_keeps_capital: bool = False


def pick(variants: Variants, family: str) -> str:
    return variants.get(family) or variants[NEUTRAL]


ENGLISH = Phrasebook(
    language="en",
    function_words=frozenset(
        [
            "a",
            "an",
            "the",
            "this",
            "that",
            "these",
            "those",
            "it",
            "its",
            "they",
            "their",
            "there",
            "we",
            "our",
            "you",
            "your",
            "he",
            "she",
            "his",
            "her",
            "most",
            "many",
            "some",
            "every",
            "each",
            "all",
            "no",
            "one",
            "two",
            "three",
            "in",
            "on",
            "at",
            "by",
            "for",
            "from",
            "with",
            "when",
            "while",
            "if",
            "as",
            "after",
            "before",
            "once",
            "during",
            "to",
            "how",
            "why",
            "what",
            "where",
            "which",
            "who",
            "whose",
            "whom",
            "is",
            "are",
            "was",
            "were",
            "do",
            "does",
            "did",
            "can",
            "could",
            "should",
            "nothing",
            "everything",
            "something",
            "people",
        ]
    ),
    question_words=frozenset(["how", "why", "what", "when", "where", "which", "who", "whose"]),
    hook_noun={
        NEUTRAL: "Here is what you need to know about {topic}.",
        PLAYFUL: "Ready for a quick tour of {topic}?",
        SERIOUS: "Let us take a careful look at {topic}.",
    },
    hook_clause={
        NEUTRAL: "Here is {topic}, step by step.",
        PLAYFUL: "Ever wondered {topic}?",
        SERIOUS: "This video explains {topic}.",
    },
    question="{topic}?",
    intro_noun="This is a short first look at {topic}.",
    intro_clause="This is a short first look at {topic}.",
    lead_topic="{topic}: here is what you need to know.",
    intro_topic="{topic}: a short first look.",
    audience={
        NEUTRAL: "We made this video for {audience}.",
        PLAYFUL: "If you count yourself among {audience}, this one is for you.",
        SERIOUS: "This video is written for {audience}.",
    },
    goal={
        NEUTRAL: "By the end, you will be able to {goal}.",
        PLAYFUL: "By the end, you will be ready to {goal}.",
        SERIOUS: "The aim is that you can {goal} afterwards.",
    },
    goal_determiner={
        NEUTRAL: "By the end, you will have {goal}.",
        SERIOUS: "The aim is to give you {goal}.",
    },
    preview={
        NEUTRAL: "It comes down to {count} points.",
        PLAYFUL: "We have {count} things to show you.",
        SERIOUS: "We will go through {count} points in order.",
    },
    close_goal={
        NEUTRAL: "Now you know enough to {goal}.",
        PLAYFUL: "Now go ahead and {goal}.",
        SERIOUS: "With that, you can {goal}.",
    },
    close_goal_determiner={
        NEUTRAL: "And that gives you {goal}.",
    },
    close_audience={
        NEUTRAL: "Share it with other {audience} who might find it useful.",
        PLAYFUL: "Pass it on to other {audience} you know.",
        SERIOUS: "It may help other {audience} as well.",
    },
    close_noun={
        NEUTRAL: "That was {topic}, in a nutshell.",
        PLAYFUL: "And that is {topic}, the short version.",
        SERIOUS: "Those are the essentials of {topic}.",
    },
    close_clause={
        NEUTRAL: "And that is {topic}.",
        SERIOUS: "That, in short, is {topic}.",
    },
    close_question={
        NEUTRAL: "That is a first answer to the question: {topic}?",
    },
    sign_off="Thanks for watching.",
    lead_first="First, {point}",
    lead_middle=("Next, {point}", "Then, {point}", "On top of that, {point}", "After that, {point}"),
    lead_last="Finally, {point}",
    join="{first}, and {second}",
    point_title="Point {number}",
    close_title="In short",
    numbers=tuple(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    ),
    audience_articles=frozenset({"the", "a", "an", "all"}),
)

FRENCH = Phrasebook(
    language="fr",
    function_words=frozenset(
        [
            "le",
            "la",
            "les",
            "l'",
            "un",
            "une",
            "des",
            "du",
            "de",
            "ce",
            "cet",
            "cette",
            "ces",
            "il",
            "elle",
            "ils",
            "elles",
            "on",
            "nous",
            "vous",
            "leur",
            "leurs",
            "son",
            "sa",
            "ses",
            "notre",
            "nos",
            "votre",
            "vos",
            "tout",
            "tous",
            "toute",
            "toutes",
            "chaque",
            "aucun",
            "quand",
            "si",
            "comme",
            "dans",
            "en",
            "sur",
            "pour",
            "avec",
            "sans",
            "après",
            "avant",
            "pendant",
            "comment",
            "pourquoi",
            "quoi",
            "quel",
            "quelle",
            "quels",
            "quelles",
            "où",
            "qui",
            "que",
            "qu'",
            "c'est",
            "beaucoup",
            "plusieurs",
            "certains",
            "certaines",
        ]
    ),
    question_words=frozenset(
        ["comment", "pourquoi", "quand", "où", "qui", "que", "quel", "quelle", "quels", "quelles", "combien"]
    ),
    hook_noun={
        NEUTRAL: "Voici l'essentiel à savoir sur {topic}.",
        PLAYFUL: "Prêts à tout savoir sur {topic} ?",
        SERIOUS: "Penchons-nous avec attention sur {topic}.",
    },
    hook_clause={
        NEUTRAL: "Voyons ensemble {topic}, étape par étape.",
        PLAYFUL: "Vous êtes-vous déjà demandé {topic} ?",
        SERIOUS: "Cette vidéo explique {topic}.",
    },
    question="{topic} ?",
    intro_noun="Voici une courte vidéo sur {topic}.",
    intro_clause="Cette courte vidéo se demande {topic}.",
    lead_topic="{topic} : voici l'essentiel à savoir.",
    intro_topic="{topic} : voilà le sujet de cette courte vidéo.",
    audience={
        NEUTRAL: "Cette vidéo est pensée pour {audience}.",
        PLAYFUL: "Cette vidéo a été faite tout spécialement pour {audience}.",
        SERIOUS: "Public visé : {audience}.",
    },
    goal={
        NEUTRAL: "L'objectif : {goal}.",
        SERIOUS: "Notre objectif est simple : {goal}.",
    },
    goal_determiner={NEUTRAL: "L'objectif : {goal}."},
    preview={
        NEUTRAL: "Tout tient en {count} points.",
        PLAYFUL: "Nous avons {count} choses à vous montrer.",
        SERIOUS: "Nous allons voir {count} points, dans l'ordre.",
    },
    close_goal={
        NEUTRAL: "Vous avez maintenant de quoi {goal}.",
        PLAYFUL: "À vous de jouer maintenant : {goal}.",
        SERIOUS: "Vous disposez désormais de l'essentiel pour {goal}.",
    },
    close_goal_determiner={NEUTRAL: "Vous avez maintenant de quoi {goal}."},
    close_audience={
        NEUTRAL: "Partagez-la avec d'autres {audience} que cela pourrait aider.",
        PLAYFUL: "N'hésitez pas à la montrer à d'autres {audience}.",
        SERIOUS: "Elle pourra aussi être utile à d'autres {audience}.",
    },
    close_noun={
        NEUTRAL: "Voilà pour l'essentiel sur {topic}.",
        PLAYFUL: "Et voilà, vous en savez plus sur {topic} !",
        SERIOUS: "Voilà ce qu'il faut retenir sur {topic}.",
    },
    close_clause={
        NEUTRAL: "Voilà donc {topic}.",
        SERIOUS: "Voilà, en résumé, {topic}.",
    },
    close_question={NEUTRAL: "Voilà une première réponse à la question : {topic} ?"},
    sign_off="Merci de nous avoir regardés.",
    lead_first="D'abord, {point}",
    lead_middle=("Ensuite, {point}", "Puis, {point}", "De plus, {point}", "Après cela, {point}"),
    lead_last="Enfin, {point}",
    join="{first}, et {second}",
    point_title="Point {number}",
    close_title="En bref",
    numbers=tuple(
        [
            "zéro",
            "un",
            "deux",
            "trois",
            "quatre",
            "cinq",
            "six",
            "sept",
            "huit",
            "neuf",
            "dix",
            "onze",
            "douze",
            "treize",
            "quatorze",
            "quinze",
            "seize",
            "dix-sept",
            "dix-huit",
            "dix-neuf",
            "vingt",
        ]
    ),
    audience_articles=frozenset({"les", "des"}),
)

GERMAN = Phrasebook(
    language="de",
    # German nouns keep their capital; only these words are lowercased inside a sentence.
    function_words=frozenset(
        [
            "der",
            "die",
            "das",
            "den",
            "dem",
            "des",
            "ein",
            "eine",
            "einen",
            "einem",
            "einer",
            "es",
            "er",
            "sie",
            "wir",
            "ihr",
            "man",
            "dies",
            "diese",
            "dieser",
            "dieses",
            "jeder",
            "jede",
            "jedes",
            "alle",
            "viele",
            "manche",
            "wenn",
            "als",
            "wie",
            "warum",
            "was",
            "wo",
            "wer",
            "wann",
            "weil",
            "dass",
            "in",
            "im",
            "auf",
            "mit",
            "bei",
            "nach",
            "vor",
            "für",
            "aus",
            "beim",
            "zum",
            "zur",
        ]
    ),
    question_words=frozenset(
        ["wie", "warum", "was", "wo", "wer", "wann", "weshalb", "wieso", "welche", "welcher", "welches"]
    ),
    hook_noun={
        NEUTRAL: "Unser Thema heute: {topic}.",
        PLAYFUL: "Los geht's mit einem kurzen Ausflug, Thema: {topic}.",
        SERIOUS: "Im Mittelpunkt dieses Videos steht ein Thema: {topic}.",
    },
    hook_clause={
        NEUTRAL: "Darum geht es heute: {topic}.",
        PLAYFUL: "Schon mal überlegt? Darum geht es: {topic}.",
        SERIOUS: "Dieses Video klärt eine Frage: {topic}.",
    },
    question="{topic}?",
    intro_noun="Ein kurzes Video zum Thema: {topic}.",
    intro_clause="Ein kurzes Video zu der Frage: {topic}.",
    lead_topic="Unser Thema heute: {topic}.",
    intro_topic="Ein kurzes Video zum Thema: {topic}.",
    audience={
        NEUTRAL: "Dieses Video ist für {audience} gedacht.",
        PLAYFUL: "Dieses Video ist extra für {audience} gemacht.",
        SERIOUS: "Das Video richtet sich an eine bestimmte Zielgruppe: {audience}.",
    },
    goal={
        NEUTRAL: "Das Ziel: {goal}.",
        SERIOUS: "Unser Ziel ist klar: {goal}.",
    },
    goal_determiner={NEUTRAL: "Das Ziel: {goal}."},
    preview={
        NEUTRAL: "Es kommt auf {count} Punkte an.",
        PLAYFUL: "Wir haben {count} Dinge für Sie vorbereitet.",
        SERIOUS: "Wir gehen {count} Punkte der Reihe nach durch.",
    },
    close_goal={
        NEUTRAL: "Jetzt wissen Sie genug für Ihr Ziel: {goal}.",
        PLAYFUL: "Jetzt sind Sie dran: {goal}.",
        SERIOUS: "Damit haben Sie das Nötige für Ihr Ziel: {goal}.",
    },
    close_goal_determiner={NEUTRAL: "Jetzt wissen Sie genug für Ihr Ziel: {goal}."},
    close_audience={
        NEUTRAL: "Teilen Sie es gern mit allen, für die es gedacht ist: {audience}.",
        PLAYFUL: "Schicken Sie es ruhig weiter, am besten an {audience}.",
        SERIOUS: "Es eignet sich auch zum Weitergeben, vor allem für {audience}.",
    },
    close_noun={
        NEUTRAL: "Das war das Wichtigste zum Thema: {topic}.",
        PLAYFUL: "Und das war es schon, kurz und bündig, zum Thema: {topic}.",
        SERIOUS: "Das sind die Grundlagen zum Thema: {topic}.",
    },
    close_clause={
        NEUTRAL: "Das war die Antwort auf die Frage: {topic}.",
    },
    close_question={NEUTRAL: "Das war eine erste Antwort auf die Frage: {topic}?"},
    sign_off="Danke fürs Zuschauen.",
    lead_first="Erstens: {point}",
    lead_middle=("Zweitens: {point}", "Drittens: {point}", "Viertens: {point}", "Fünftens: {point}"),
    lead_last="Und zum Schluss: {point}",
    join="{first}, und {second}",
    point_title="Punkt {number}",
    close_title="Kurz gesagt",
    numbers=tuple(
        [
            "null",
            "eins",
            "zwei",
            "drei",
            "vier",
            "fünf",
            "sechs",
            "sieben",
            "acht",
            "neun",
            "zehn",
            "elf",
            "zwölf",
            "dreizehn",
            "vierzehn",
            "fünfzehn",
            "sechzehn",
            "siebzehn",
            "achtzehn",
            "neunzehn",
            "zwanzig",
        ]
    ),
    lead_keeps_capital=True,
)

SPANISH = Phrasebook(
    language="es",
    function_words=frozenset(
        [
            "el",
            "la",
            "los",
            "las",
            "un",
            "una",
            "unos",
            "unas",
            "lo",
            "este",
            "esta",
            "estos",
            "estas",
            "ese",
            "esa",
            "esos",
            "esas",
            "su",
            "sus",
            "nuestro",
            "nuestra",
            "todo",
            "todos",
            "toda",
            "todas",
            "cada",
            "ningún",
            "ninguna",
            "cuando",
            "si",
            "como",
            "en",
            "con",
            "sin",
            "para",
            "por",
            "sobre",
            "después",
            "antes",
            "durante",
            "cómo",
            "por",
            "qué",
            "qué",
            "cuál",
            "cuáles",
            "dónde",
            "quién",
            "quiénes",
            "muchos",
            "muchas",
            "algunos",
            "algunas",
            "se",
            "es",
            "son",
            "hay",
        ]
    ),
    question_words=frozenset(
        ["cómo", "qué", "cuál", "cuáles", "dónde", "cuándo", "quién", "quiénes", "cuánto", "cuántos", "por"]
    ),
    hook_noun={
        NEUTRAL: "Esto es lo que necesitas saber sobre {topic}.",
        PLAYFUL: "¿Listos para un paseo rápido sobre {topic}?",
        SERIOUS: "Veamos con atención un tema concreto: {topic}.",
    },
    hook_clause={
        NEUTRAL: "Veamos {topic}, paso a paso.",
        PLAYFUL: "¿Alguna vez te has preguntado {topic}?",
        SERIOUS: "Este vídeo explica {topic}.",
    },
    question="¿{topic}?",
    intro_noun="Este es un vídeo corto sobre {topic}.",
    intro_clause="Este vídeo corto trata de {topic}.",
    lead_topic="{topic}: esto es lo que necesitas saber.",
    intro_topic="{topic}: ese es el tema de este vídeo corto.",
    audience={
        NEUTRAL: "Este vídeo está pensado para {audience}.",
        PLAYFUL: "Hemos hecho este vídeo especialmente para {audience}.",
        SERIOUS: "Está dirigido a un público concreto: {audience}.",
    },
    goal={
        NEUTRAL: "El objetivo: {goal}.",
        SERIOUS: "Nuestro objetivo es claro: {goal}.",
    },
    goal_determiner={NEUTRAL: "El objetivo: {goal}."},
    preview={
        NEUTRAL: "Todo se resume en {count} puntos.",
        PLAYFUL: "Tenemos {count} cosas que enseñarte.",
        SERIOUS: "Repasaremos {count} puntos, en orden.",
    },
    close_goal={
        NEUTRAL: "Ahora ya sabes lo suficiente para {goal}.",
        PLAYFUL: "Ahora te toca a ti: {goal}.",
        SERIOUS: "Con esto, tienes lo necesario para {goal}.",
    },
    close_goal_determiner={NEUTRAL: "Ahora ya sabes lo suficiente para {goal}."},
    close_audience={
        NEUTRAL: "Compártelo con {other} {audience} a quienes pueda servir.",
        PLAYFUL: "Enséñaselo a {other} {audience} que conozcas.",
        SERIOUS: "También puede ser útil para {other} {audience}.",
    },
    close_noun={
        NEUTRAL: "Eso es lo esencial sobre {topic}.",
        PLAYFUL: "¡Y esto ha sido todo sobre {topic}, en pocas palabras!",
        SERIOUS: "Esos son los fundamentos sobre {topic}.",
    },
    close_clause={
        NEUTRAL: "Ya sabes {topic}.",
        SERIOUS: "Ahora queda claro {topic}.",
    },
    close_question={NEUTRAL: "Esa es una primera respuesta a la pregunta: ¿{topic}?"},
    sign_off="Gracias por vernos.",
    lead_first="Primero, {point}",
    lead_middle=("Después, {point}", "Luego, {point}", "Además, {point}", "A continuación, {point}"),
    lead_last="Por último, {point}",
    join="{first}, y {second}",
    point_title="Punto {number}",
    close_title="En resumen",
    numbers=tuple(
        [
            "cero",
            "uno",
            "dos",
            "tres",
            "cuatro",
            "cinco",
            "seis",
            "siete",
            "ocho",
            "nueve",
            "diez",
            "once",
            "doce",
            "trece",
            "catorce",
            "quince",
            "dieciséis",
            "diecisiete",
            "dieciocho",
            "diecinueve",
            "veinte",
        ]
    ),
    audience_articles=frozenset({"los", "las", "unos", "unas"}),
)

PHRASEBOOKS = {book.language: book for book in (ENGLISH, FRENCH, GERMAN, SPANISH)}
