"""What a person asks of their to-do list, read from plain English by rules.

The built-in offline model (`offline_model.py`) works from this: it turns one message into one
`Request` (add, list, change a task, pick from a list it offered, or small talk), and the tools
do the rest. Dates are left in the words the tools understand ("tomorrow 09:00", "friday",
"in 3 days"); only month names ("15 December") are turned into YYYY-MM-DD here, from the user's
local date. What the rules do not cover is `Chat("unknown")`, and the model says so plainly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

Priority = Literal["none", "low", "medium", "high"]
Action = Literal["complete", "reopen", "delete", "rename", "redate", "undate", "prioritize", "label"]


@dataclass(frozen=True, slots=True)
class AddTask:
    title: str
    due: str | None = None
    priority: Priority | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ListTasks:
    status: Literal["all", "pending", "completed"] = "pending"
    due: Literal["overdue", "today", "tomorrow", "next_7_days", "no_date"] | None = None
    day: str | None = None
    priority: tuple[Priority, ...] = ()
    labels: tuple[str, ...] = ()
    query: str | None = None


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A task as the person named it: by id ("task 4") or by words ("the dentist task")."""

    words: str | None = None
    task_id: int | None = None


@dataclass(frozen=True, slots=True)
class ChangeTask:
    action: Action
    target: TaskRef
    title: str | None = None
    due: str | None = None
    priority: Priority | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Choice:
    """An answer to "which one?": a position in the offered list (0-based, -1 the last), or an id."""

    position: int | None = None
    task_id: int | None = None


@dataclass(frozen=True, slots=True)
class Chat:
    kind: Literal["greeting", "thanks", "help", "unknown"]


Request = AddTask | ListTasks | ChangeTask | Choice | Chat

# --- dates and times -----------------------------------------------------------------------

_WEEKDAY = (
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun"
)
_WEEKDAYS = {
    "mon": "monday",
    "tue": "tuesday",
    "tues": "tuesday",
    "wed": "wednesday",
    "thu": "thursday",
    "thur": "thursday",
    "thurs": "thursday",
    "fri": "friday",
    "sat": "saturday",
    "sun": "sunday",
}
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}
_COUNT = r"\d{1,3}|a|an|one|two|three|four|five|six|seven"
_ORDINAL = r"(\d{1,2})(?:st|nd|rd|th)?"

_DAY = (
    r"(?P<day>today|tonight|this evening|this afternoon|tomorrow|tmrw|day after tomorrow"
    r"|next week|(?:next |this |on )?(?:" + _WEEKDAY + r")"
    r"|in (?:" + _COUNT + r") (?:days?|weeks?)"
    r"|\d{4}-\d{2}-\d{2}"
    r"|(?:" + _MONTH + r")\.? " + _ORDINAL + r"|" + _ORDINAL + r" (?:of )?(?:" + _MONTH + r")\.?)"
)
_LEAD = r"(?:due |by |on |for |before |until |till )?"
_HALF = r"(?: ?(?:am|pm|a\.m\.|p\.m\.))"


def _time_at(name: str) -> str:
    """ "at 9", "at 9:30", "@ 5pm", "at noon" """
    return r"(?:at|@) (?P<" + name + r">noon|midnight|\d{1,2}(?::\d{2})?" + _HALF + "?)"


def _time_bare(name: str) -> str:
    """A time that says it is one without "at": "9:30", "5pm", "noon"."""
    return r"(?P<" + name + r">noon|midnight|\d{1,2}:\d{2}" + _HALF + r"?|\d{1,2}" + _HALF + ")"


# A day with an optional time, or a time alone: "tomorrow at 9am", "friday 17:00", "at 3pm".
_WHEN = re.compile(
    r"(?<![\w-])"
    + _LEAD
    + r"(?:"
    + _DAY
    + r"(?:,? (?:"
    + _time_at("time")
    + "|"
    + _time_bare("time2")
    + r"))?|"
    + _time_at("time3")
    + "|"
    + _time_bare("time4")
    + r")(?![\w-])",
    re.IGNORECASE,
)
_TIME_GROUPS = ("time", "time2", "time3", "time4")


def _time_text(spoken: str) -> str | None:
    """A spoken time as HH:MM (24-hour); bare hours of 1-7 are read as afternoon."""
    spoken = spoken.lower().replace(".", "").replace(" ", "")
    if spoken == "noon":
        return "12:00"
    if spoken == "midnight":
        return "00:00"
    match = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?(am|pm)?", spoken)
    if match is None:
        return None
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if half == "pm" and hour < 12:
        hour += 12
    elif half == "am" and hour == 12:
        hour = 0
    elif half is None and match.group(2) is None and 1 <= hour <= 7:
        hour += 12
    if hour > 23 or minute > 59:
        return None
    return f"{hour:02d}:{minute:02d}"


def _day_text(spoken: str, today: date | None) -> str | None:
    """A spoken day in the words the tools read, or YYYY-MM-DD for a month name."""
    spoken = re.sub(r"\s+", " ", spoken.lower().strip())
    spoken = re.sub(r"^(?:next|this|on) (?=" + _WEEKDAY + r")", "", spoken)
    if spoken in ("today", "tonight", "this evening", "this afternoon"):
        return "today"
    if spoken in ("tomorrow", "tmrw"):
        return "tomorrow"
    if spoken == "day after tomorrow":
        return "in 2 days"
    if spoken == "next week":
        return spoken
    if spoken in _WEEKDAYS.values() or spoken in _WEEKDAYS:
        return _WEEKDAYS.get(spoken, spoken)
    if match := re.fullmatch(r"in (" + _COUNT + r") (days?|weeks?)", spoken):
        count = _NUMBERS.get(match.group(1)) or int(match.group(1))
        return f"in {count * 7 if match.group(2).startswith('week') else count} days"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", spoken):
        return spoken
    match = re.fullmatch(r"(" + _MONTH + r")\.? " + _ORDINAL, spoken) or re.fullmatch(
        _ORDINAL + r" (?:of )?(" + _MONTH + r")\.?", spoken
    )
    if match is None or today is None:
        return None
    month_word, day_word = (
        (match.group(1), match.group(2)) if match.group(1) in _MONTHS else (match.group(2), match.group(1))
    )
    month, day = _MONTHS[month_word.rstrip(".")], int(day_word)
    for year in (today.year, today.year + 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            return None
        if candidate >= today:
            return candidate.isoformat()
    return None


def split_due(text: str, today: date | None) -> tuple[str, str | None]:
    """The text without its (last) date and time, and that date as the tools' `due` words."""
    for match in reversed(list(_WHEN.finditer(text))):
        day = match.group("day")
        spoken_time = next((match.group(name) for name in _TIME_GROUPS if match.group(name)), None)
        day_words = _day_text(day, today) if day else "today"
        time_words = _time_text(spoken_time) if spoken_time else None
        if day_words is None or (spoken_time and time_words is None):
            continue
        rest = (text[: match.start()] + " " + text[match.end() :]).strip()
        return _tidy(rest), day_words + (f" {time_words}" if time_words else "")
    return text, None


# --- priority and labels -------------------------------------------------------------------

_PRIORITY_WORDS: dict[str, Priority] = {
    "high": "high",
    "top": "high",
    "urgent": "high",
    "medium": "medium",
    "normal": "medium",
    "low": "low",
    "no": "none",
    "none": "none",
}
_PRIORITY = re.compile(
    r"(?:,?\s*(?:with |as |at |a |an )?\b(?P<level>high|top|medium|normal|low|no)[- ]priority\b"
    r"|,?\s*\bpriority[: ]\s*(?P<level2>high|medium|low|none)\b"
    r"|,?\s*\b(?:it'?s |it is )?(?P<urgent>urgent|urgently|asap|important)\b)",
    re.IGNORECASE,
)


def split_priority(text: str) -> tuple[str, Priority | None]:
    match = _PRIORITY.search(text)
    if match is None:
        return text, None
    if match.group("level") or match.group("level2"):
        level = _PRIORITY_WORDS[(match.group("level") or match.group("level2")).lower()]
    else:
        level = "high"
    return _tidy(text[: match.start()] + " " + text[match.end() :]), level


_HASHTAG = re.compile(r"(?:^|\s)#([^\s#,.!?]+)")
_LABEL_PHRASE = re.compile(
    r",?\s*\b(?:with |and )?(?:the )?(?:labels?|tags?|tagged|labell?ed)(?: as| with|:)?\s+(?P<names>.+)$",
    re.IGNORECASE,
)


def _label_names(listed: str) -> tuple[str, ...]:
    parts = re.split(r"\s*(?:,|\band\b|&)\s*", listed.strip(" .!?"))
    return tuple(part.strip("\"'") for part in parts if part.strip("\"'"))


def split_labels(text: str) -> tuple[str, tuple[str, ...]]:
    labels = tuple(match.group(1) for match in _HASHTAG.finditer(text))
    text = _HASHTAG.sub(" ", text)
    if match := _LABEL_PHRASE.search(text):
        labels += _label_names(match.group("names"))
        text = text[: match.start()]
    return _tidy(text), labels


# --- shared clean-up -------------------------------------------------------------------------

_NOT_A_TASK = frozenset(
    {"what", "which", "who", "anything", "everything", "something", "nothing", "there", "it", "that", "this"}
)
_QUOTES = "\"'\u201c\u201d\u2018\u2019"

# Words left hanging at the end once a date or a label was taken out ("call mom on", "buy milk and").
_DANGLING_WORDS = frozenset({"due", "by", "on", "at", "for", "with", "and", "to", "before", "until"})


def _tidy(text: str) -> str:
    """Whitespace collapsed, and trailing punctuation and hanging words dropped. By plain string
    operations: a regular expression for "any mix of those at the end" backtracks exponentially
    on a run of commas."""
    text = re.sub(r"\s+", " ", text).strip()
    while True:
        text = text.rstrip(" ,;:")
        head, space, last = text.rpartition(" ")
        if not space or last.lower() not in _DANGLING_WORDS:
            return text
        text = head


def _title(text: str) -> str:
    text = _tidy(text)
    text = re.sub(
        r"^(?:a |an )?(?:new )?(?:task|todo|to-do|reminder|item)(?: called| named| to|:)?\s+",
        "",
        text,
        flags=re.I,
    )
    text = re.sub(r"^(?:to|called|named)\s+", "", text, flags=re.I)
    text = re.sub(
        r"\s+(?:to|on|onto|in)\s+(?:my|the)\s+(?:to-?do\s+|task\s+)?(?:list|tasks)$", "", text, flags=re.I
    )
    text = _tidy(text).strip(_QUOTES)
    return text[:1].upper() + text[1:] if text else text


def _target(words: str) -> TaskRef:
    words = _tidy(words).strip(" .!?")
    if match := re.fullmatch(r"(?:task|number|no\.?|item)?\s*#?(\d{1,18})", words, re.IGNORECASE):
        return TaskRef(task_id=int(match.group(1)))
    words = re.sub(r"^(?:the|my|that|this|our)\s+", "", words, flags=re.I)
    words = re.sub(r"\s+(?:task|todo|to-do|item|one|reminder)$", "", words, flags=re.I)
    words = re.sub(
        r"^(?:task|todo|to-do|item|reminder)\s+(?:to\s+|called\s+|named\s+)?", "", words, flags=re.I
    )
    words = words.strip(_QUOTES + " ")
    return TaskRef(words=words or None)


# --- the requests ----------------------------------------------------------------------------

_POLITE = re.compile(
    r"^(?:(?:please|pls|hey|ok|okay|so|and|now|also|can you|could you|would you)[, ]+)+", re.I
)
_GREETING = re.compile(
    r"^(?:hi|hello|hey|hiya|howdy|good (?:morning|afternoon|evening)|yo)\b[\s!.,]*(?:there)?[\s!.]*$", re.I
)
_THANKS = re.compile(
    r"^(?:thanks|thank you|thx|ty|cheers|great|perfect|cool|nice|awesome|ok|okay)\b.*$", re.I
)
_HELP = re.compile(
    r"^(?:help|\?|what can you do|what do you do|how does this work|how do i use this|commands)\b", re.I
)
_CHOICE = re.compile(
    r"^(?:(?:the\s+)?(?P<ordinal>first|second|third|fourth|fifth|last|1st|2nd|3rd|4th|5th)(?:\s+one)?"
    r"|(?:number\s+|no\.?\s*)?(?P<position>\d{1,2})"
    r"|(?:task\s*#?|#)(?P<task_id>\d{1,18}))(?:\s+(?:one|please))?$",
    re.I,
)
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3}
_ORDINALS |= {"fifth": 4, "5th": 4, "last": -1}

_DONE_WORDS = r"done|complete|completed|finished|checked off|ticked off"
_OPEN_WORDS = (
    r"not done|undone|incomplete|pending|open|not complete|not completed|unfinished|not finished|to do"
)
_CHANGE_PATTERNS: tuple[tuple[str, Action], ...] = (
    (
        r"^(?:remove|clear|drop|delete|take off) (?:the )?(?:due date|deadline|date|due) "
        r"(?:from|of|on|for) (?P<t>.+)$",
        "undate",
    ),
    (r"^(?P<t>.+?) (?:has|needs) no (?:due date|deadline)$", "undate"),
    (r"^mark (?P<t>.+?) as (?:" + _OPEN_WORDS + r")$", "reopen"),
    (r"^(?:reopen|re-open|uncomplete|unfinish|undo|unmark|uncheck) (?P<t>.+)$", "reopen"),
    (r"^(?:mark|set) (?P<t>.+?) (?:as )?(?:" + _DONE_WORDS + r")$", "complete"),
    (r"^(?:complete|finish|close|check off|tick off|cross off|mark off) (?P<t>.+)$", "complete"),
    (r"^(?:i'?m |i am )?(?:done|finished) with (?P<t>.+)$", "complete"),
    (r"^i(?:'ve| have)? (?:just )?(?:finished|completed|done|did) (?P<t>.+)$", "complete"),
    (r"^(?P<t>.+?) is (?:now )?(?:" + _DONE_WORDS + r")$", "complete"),
    (r"^(?:delete|remove|drop|erase|cancel|scrap|trash|get rid of|forget about) (?P<t>.+)$", "delete"),
    (r"^(?:rename|retitle) (?P<t>.+?) (?:to|as|into) (?P<v>.+)$", "rename"),
    (r"^change (?:the )?(?:title|name) of (?P<t>.+?) to (?P<v>.+)$", "rename"),
    (
        r"^(?:set|change|move) (?:the )?(?:due date|deadline|date) (?:of|for|on) (?P<t>.+?) "
        r"to (?P<v>.+)$",
        "redate",
    ),
    (
        r"^(?:move|reschedule|postpone|push back|push|defer|shift|delay|bump) (?P<t>.+?) "
        r"(?:to|until|till|for|by) (?P<v>.+)$",
        "redate",
    ),
    (r"^(?P<t>.+?) is (?:now |actually )?due (?P<v>.+)$", "redate"),
    (r"^make (?P<t>.+?) due (?P<v>.+)$", "redate"),
    (r"^(?:set|change) (?:the )?priority (?:of|for|on) (?P<t>.+?) to (?P<v>\w+)$", "prioritize"),
    (
        r"^(?:make|mark|set) (?P<t>.+?) (?:as |to )?(?P<v>high|top|medium|normal|low|no)(?: priority)?$",
        "prioritize",
    ),
    (r"^(?:make|mark|set) (?P<t>.+?) (?:as )?(?P<v>urgent|important)$", "prioritize"),
    (r"^(?:prioriti[sz]e) (?P<t>.+)$", "prioritize"),
    (r"^(?:label|tag) (?P<t>.+?) (?:as|with) (?P<v>.+)$", "label"),
    (r"^add (?:the )?(?:labels?|tags?) (?P<v>.+?) to (?P<t>.+)$", "label"),
    (r"^change (?P<t>.+?) to (?P<v>.+)$", "rename"),
)
_CHANGES = tuple((re.compile(pattern, re.I), action) for pattern, action in _CHANGE_PATTERNS)
_ADD = re.compile(
    r"^(?:add(?: a| an| new)?(?: task| todo| to-do| reminder| item)?:?"
    r"|create(?: a| an)?(?: new)?(?: task| todo| to-do| reminder)?:?"
    r"|new (?:task|todo|to-do|reminder):?|(?:task|todo|to-do|note):"
    r"|remind me to|remind me|remember to|don'?t let me forget to|don'?t forget to"
    r"|i (?:need|have|want|ought) to|i must|i should|i'?ve got to|i gotta|put)\s+(?P<rest>.+)$",
    re.I,
)
_LIST = re.compile(
    r"^(?:show|list|display|see|view|give|tell|read|get|what|what's|whats|which|any|anything|do i have"
    r"|have i|how many|is|are|find|search|look|where|my)\b",
    re.I,
)


_LIST_CUE = re.compile(
    r"\b(?:tasks?|todos?|to-dos?|list|items?|due|overdue|late|pending|open|left|remaining|completed|done"
    r"|finished|priority|urgent|labell?ed|tagged|agenda|plans?|today|tomorrow|week|upcoming|anything"
    r"|find|search|look for|do i have)\b",
    re.I,
)


# A request to a to-do list is a sentence or two; past this the rest is not read.
READ_MAX = 1000


def understand(message: str, today: date | None = None) -> Request:
    text = re.sub(r"\s+", " ", message[:READ_MAX]).strip()
    text = re.sub(r"\b(what|that|there|it)['\u2019]s\b", r"\1 is", text, flags=re.I)
    text = _POLITE.sub("", text).strip()
    bare = text.strip(" .!?")
    if not bare:
        return Chat("unknown")
    if _GREETING.match(bare):
        return Chat("greeting")
    if _HELP.match(bare):
        return Chat("help")
    if match := _CHOICE.match(bare):
        if match.group("task_id"):
            return Choice(task_id=int(match.group("task_id")))
        if match.group("position"):
            return Choice(position=int(match.group("position")) - 1)
        return Choice(position=_ORDINALS[match.group("ordinal").lower()])
    if _THANKS.match(bare) and len(bare.split()) <= 4:
        return Chat("thanks")
    if change := _change(bare, today):
        return change
    if match := _ADD.match(bare):
        return _add(match.group("rest"), today)
    if _LIST.match(bare) and _LIST_CUE.search(bare):
        return _listing(bare, today)
    return Chat("unknown")


def _add(rest: str, today: date | None) -> Request:
    rest, due = split_due(rest, today)
    rest, priority = split_priority(rest)
    rest, labels = split_labels(rest)
    rest = re.sub(r"\s+(?:on|to|onto) (?:my|the) (?:to-?do |task )?list\b", " ", rest, flags=re.I)
    title = _title(rest)
    if not title:
        return Chat("unknown")
    return AddTask(title=title, due=due, priority=priority, labels=labels)


def _change(text: str, today: date | None) -> ChangeTask | None:
    for pattern, action in _CHANGES:
        match = pattern.match(text)
        if match is None:
            continue
        target = _target(match.group("t"))
        if target.words is None and target.task_id is None:
            continue
        if target.words is not None and target.words.lower() in _NOT_A_TASK:
            # "what is due today" asks; it does not re-date a task called "what".
            continue
        value = match.groupdict().get("v")
        change = ChangeTask(action=action, target=target)
        if action == "redate" or (action == "rename" and value is not None):
            rest, due = split_due(value or "", today)
            if due is not None and not rest:
                return replace(change, action="redate", due=due)
            if action == "redate":
                continue
            if (level := _PRIORITY_WORDS.get((value or "").lower().removesuffix(" priority"))) is not None:
                return replace(change, action="prioritize", priority=level)
            return replace(change, title=_title(value or "")) if _title(value or "") else None
        if action == "prioritize":
            word = (value or "high").lower()
            level = _PRIORITY_WORDS.get(word) or ("high" if word in ("urgent", "important") else None)
            return replace(change, priority=level) if level else None
        if action == "label":
            labels = _label_names(value or "")
            return replace(change, labels=labels) if labels else None
        return change
    return None


_STATUS_COMPLETED = re.compile(
    r"\b(?:completed|done|finished|ticked off|checked off|accomplished|did i)\b", re.I
)
_STATUS_ALL = re.compile(r"\b(?:all|every|everything|whole|entire)\b", re.I)
_QUERY = re.compile(
    r"\b(?:about|matching|containing|mentioning|called|named|with the words?|for|find|search(?: for)?"
    r"|look(?:ing)? for)"
    r"\s+(?P<q>.+)$",
    re.I,
)
_QUERY_LEAD = re.compile(
    r"^(?:(?:tasks?|todos?|to-dos?|items?|things?|anything|about|for|with|the|my|called|named|matching"
    r"|containing|mentioning|that mention|words?)\s+)+",
    re.I,
)
_LIST_FILLER = re.compile(
    r"\b(?:show|list|display|see|view|give|tell|read|get|what|what's|whats|which|any|anything|do|does|have|has"
    r"|is|are|there|how|many|find|search|look|looking|where|me|my|i|the|all|every|everything|whole|entire"
    r"|tasks?|todos?|to-dos?|items?|things?|list|lists|on|in|of|for|to|pending|open|left|remaining"
    r"|outstanding|unfinished|incomplete|completed|done|finished|due|overdue|late|today|tomorrow|this|week"
    r"|upcoming|coming|up|soon|now|please|with|that|are|still|got|need|can|you|a|an)\b",
    re.I,
)


def _listing(text: str, today: date | None) -> ListTasks:
    lowered = text.lower()
    status: Literal["all", "pending", "completed"] = "pending"
    if _STATUS_COMPLETED.search(lowered) and not re.search(r"\b(?:not|un|left|to be)\b", lowered):
        status = "completed"
    elif _STATUS_ALL.search(lowered) and not re.search(r"\b(?:pending|open|left|remaining|to do)\b", lowered):
        status = "all"
    due: Literal["overdue", "today", "tomorrow", "next_7_days", "no_date"] | None = None
    day: str | None = None
    if re.search(r"\b(?:overdue|late|past due|missed|behind)\b", lowered):
        due = "overdue"
    elif re.search(r"\b(?:today|tonight)\b", lowered):
        due = "today"
    elif re.search(r"\b(?:tomorrow|tmrw)\b", lowered):
        due = "tomorrow"
    elif re.search(r"\b(?:this week|next 7 days|next seven days|coming up|upcoming|soon)\b", lowered):
        due = "next_7_days"
    elif re.search(r"\b(?:no (?:due )?date|undated|without a (?:due )?date)\b", lowered):
        due = "no_date"
    else:
        rest, spoken = split_due(text, today)
        if spoken is not None and ":" not in spoken:
            day, text = spoken, rest
    _, priority = split_priority(text)
    text, labels = split_labels(text)
    if match := re.search(r"\b(?:labell?ed|tagged|under|in the)\s+(?P<l>[\w-]+)\b", text, re.I):
        labels += (match.group("l"),)
        text = text[: match.start()] + text[match.end() :]
    query = None
    if match := _QUERY.search(text):
        query = _target(_QUERY_LEAD.sub("", match.group("q"))).words
    elif status == "pending" and due is None and day is None and not priority and not labels:
        # "find the dentist task", "any dentist tasks?": the words left are what to look for.
        leftover = _tidy(_LIST_FILLER.sub(" ", re.sub(r"[?!.,]", " ", text)))
        query = leftover or None
    return ListTasks(
        status=status,
        due=due,
        day=day,
        priority=(priority,) if priority else (),
        labels=labels,
        query=query or None,
    )


def significant_words(words: str) -> list[str]:
    return [
        word
        for word in re.findall(r"[\w'-]+", words.casefold())
        if word not in {"the", "a", "an", "my", "to", "of", "for", "and", "task", "todo", "one", "with"}
    ]


def pick(tasks: list[dict[str, object]], words: str) -> list[dict[str, object]]:
    """The tasks whose title (or description) best matches `words`: an exact title wins; else
    those containing the most of the words, if any word at all."""
    wanted = words.casefold().strip()
    exact = [task for task in tasks if str(task.get("title", "")).casefold().strip() == wanted]
    if exact:
        return exact
    terms = significant_words(words)
    if not terms:
        return []

    def score(task: dict[str, object]) -> int:
        text = f"{task.get('title', '')} {task.get('description') or ''}".casefold()
        return sum(1 for term in terms if term in text or term.rstrip("s") in text)

    scored = [(score(task), task) for task in tasks]
    top = max((value for value, _ in scored), default=0)
    return [task for value, task in scored if value == top and value > 0]
