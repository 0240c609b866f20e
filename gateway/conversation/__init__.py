"""The conversation engine: what to answer a resident, and what to file.

Pure logic (functional core): given the conversation's state, one incoming
message and a context (the clock, the campaigns, what is known of the sender),
``handle`` returns the new state, the contributions to record and the replies
to send. It opens no connection and reads no clock; the caller does the I/O.

Replies are catalogue keys with parameters (see ``gateway/locales/``), in
order. Render each with ``translate(reply.key, language, **reply.params)``,
where ``language`` is ``Outcome.language`` when set, else the sender's. A
reply whose ``contribution`` is set (the keys in ``RECEIPT_KEYS``) quotes the
reference the caller assigns to ``Outcome.contributions[reply.contribution]``:
add ``reference=ref``. Parameters are already rendered in that language.

A contribution is filed as soon as it has its campaign. When the campaign lists
neighbourhoods, the receipt is followed by the neighbourhood question, and the
new state (step ``choose_neighbourhood``) must remember which contribution the
answer is for: ``Outcome.track`` is the index in ``Outcome.contributions`` of
that contribution, and the caller writes its reference into the state's
``reference`` before storing it (when ``track`` is None, store the state as
returned). The answer comes back as ``Outcome.updates``: changes to an already
filed contribution, named by that reference.

Decisions worth knowing (also in the tests):

* Kept text is never silently dropped, except on OUBLIER (the resident asked
  for erasure, so what they were typing is discarded too). When no campaign
  could be chosen (the conversation expired in the campaign menu, the menu
  was answered wrongly too often, or STOP came in the menu), the text is filed
  with ``campaign=None`` for moderators to sort.
* STOP, START, AIDE, OUBLIER and the language switches only count when the
  message is the command alone (politeness words allowed: "stop merci").
  French contributions often begin with these words ("Stop aux voitures",
  "Arrêt de bus trop loin", "Aide aux devoirs"), and SMS providers' own
  opt-out matching is on the whole message too. SUIVI and GROUPE take an argument.
* Filing comes first, the neighbourhood question after: a resident who never
  answers it has still been filed, with a receipt. Its expiry files nothing
  and says nothing; STOP during it is the plain confirmation.
* An unrecognised answer to the neighbourhood question is appended to the
  contribution's text at once (``ContributionUpdate.append_text``): it may be
  content, or a place the list lacks. The question is asked again once; after
  a second miss the conversation ends. A bare out-of-range number is not
  content; a message of politeness alone ("merci") is taken as a skip. An
  open campaign's keyword starts a new contribution instead, and GROUPE
  describes the group of the next contribution (the filed one is not changed).
* A ``choose_neighbourhood`` state without ``reference`` but with kept text was
  stored before contributions were filed at once: the text is filed (with the
  answer's neighbourhood if there is one), so that nothing is lost.
* An answer to the campaign menu that chooses nothing is appended to the kept
  text as well, except a bare out-of-range number.
* While opted out, OUBLIER is still honoured (``forget=True``), silently, and
  YES opts back in as START does (SMS providers re-subscribe on it).
* SUIVI is forgiving about the reference ("parc-42", "PARC 42") but only ever
  looks in the sender's own contributions; a spam verdict is told as "not
  retained".
* A message whose media could not be kept (``Incoming.attachments``: refused by
  type or size, or gone) and no text gets a reply saying so; with text, the text
  is handled and a short note says the media were not kept.
* The first-contact notice comes after the other replies, so that the receipt
  is the first thing the resident reads; it is not sent on STOP or OUBLIER.
* With the notice, a resident who has not chosen a language (nothing in this message
  switched it) is offered the others: one ``LANGUAGE_INVITE`` reply per other language, in
  that language (``Reply.language``: render it in that language, not the sender's), right
  after the first reply. The caller may join it to that reply where it costs nothing (an
  SMS segment); a chat app may show it as a button. The words that switch come from the
  catalogues (``language_word``), so a new catalogue file is a new language.
* Media the channel keeps (``Incoming.media``: a chat app's or an MMS's photos, drawings and
  voice notes, as opaque references the caller resolves) are content: a voice
  note alone is a contribution (its text is the transcript, filled in later),
  and media travel with the kept text until it is filed
  (``NewContribution.media``). Sent while the neighbourhood question is open,
  media are added to the contribution just filed (``ContributionUpdate.media``)
  and the question stays open. Media sent with a command are not kept, and the
  resident is told.
* ``Incoming.start`` is a chat app's start command (``/start``, or a
  deep link ``/start parc``): a campaign named by slug or keyword opens with its
  question; otherwise the resident is welcomed with the open campaigns (one open
  campaign: its question at once). Whatever the conversation kept is filed first,
  as a keyword would. While opted out it means START.
* ``Incoming.verified`` False (an email whose sender failed DMARC alignment: anyone may have
  written it in the address's name): the words are filed for moderators, nothing is answered,
  no command obeyed, and the conversation is left as it was (``machine.unverified``).

The package, one job per module (each may import only those listed before it):

* ``model``: the data, in and out (the steps, ``State``, ``Incoming``, ``Context``,
  ``Outcome``...), and the receipt keys;
* ``words``: the command words and how text is read (commands, menu numbers, references);
* ``campaigns``: which campaign a message is about;
* ``turn``: one call's decisions, accumulated, and the ``Outcome`` made of them;
* ``questions``: the question of each step and the menus;
* ``followup``: SUIVI and AIDE;
* ``steps``: the answer at each step of a conversation;
* ``machine``: ``handle``, ``expire``, ``is_expired``, and the commands.

The names below are the engine's interface: the rest of the project imports only these.
"""

from __future__ import annotations

from gateway.conversation.campaigns import as_of
from gateway.conversation.followup import (
    ANSWER_EXCERPT,
    FOLLOW_UP_LIST_SIZE,
    answer_text,
    status_text,
)
from gateway.conversation.machine import (
    expire,
    handle,
    is_expired,
)
from gateway.conversation.model import (
    AWAITING_TEXT,
    CHOOSE_CAMPAIGN,
    CHOOSE_NEIGHBOURHOOD,
    CLOSED,
    COLLECTIVE,
    DRAFT,
    GROUP_DESCRIPTION,
    IDLE,
    INDIVIDUAL,
    LANGUAGE_INVITE,
    OPEN,
    RECEIPT,
    RECEIPT_EXPIRED,
    RECEIPT_KEYS,
    RECEIPT_PUBLISHED,
    RECEIPT_UNSORTED,
    STEPS,
    STOP_CONFIRMED_FILED,
    CampaignInfo,
    Context,
    ContributionUpdate,
    Incoming,
    NewContribution,
    Outcome,
    OwnContribution,
    Reply,
    Sender,
    State,
)
from gateway.conversation.steps import (
    MAX_MENU_RESENDS,
    MAX_NEIGHBOURHOOD_MISSES,
)
from gateway.conversation.words import (
    ECHO_LENGTH,
    FOLLOW_UP_WORDS,
    FORGET_WORDS,
    GROUP_WORDS,
    HELP_WORDS,
    MAX_MENU_DIGITS,
    MAX_REFERENCE_LENGTH,
    OPT_IN_WORDS,
    OPT_IN_WORDS_WHEN_OPTED_OUT,
    OPT_OUT_WORDS,
    POLITE_WORDS,
    SKIP_WORDS,
    STANDALONE_WORDS,
    language_word,
    same_reference,
)

__all__ = [
    "ANSWER_EXCERPT",
    "AWAITING_TEXT",
    "CHOOSE_CAMPAIGN",
    "CHOOSE_NEIGHBOURHOOD",
    "CLOSED",
    "COLLECTIVE",
    "DRAFT",
    "ECHO_LENGTH",
    "FOLLOW_UP_LIST_SIZE",
    "FOLLOW_UP_WORDS",
    "FORGET_WORDS",
    "GROUP_DESCRIPTION",
    "GROUP_WORDS",
    "HELP_WORDS",
    "IDLE",
    "INDIVIDUAL",
    "LANGUAGE_INVITE",
    "MAX_MENU_DIGITS",
    "MAX_MENU_RESENDS",
    "MAX_NEIGHBOURHOOD_MISSES",
    "MAX_REFERENCE_LENGTH",
    "OPEN",
    "OPT_IN_WORDS",
    "OPT_IN_WORDS_WHEN_OPTED_OUT",
    "OPT_OUT_WORDS",
    "POLITE_WORDS",
    "RECEIPT",
    "RECEIPT_EXPIRED",
    "RECEIPT_KEYS",
    "RECEIPT_PUBLISHED",
    "RECEIPT_UNSORTED",
    "SKIP_WORDS",
    "STANDALONE_WORDS",
    "STEPS",
    "STOP_CONFIRMED_FILED",
    "CampaignInfo",
    "Context",
    "ContributionUpdate",
    "Incoming",
    "NewContribution",
    "Outcome",
    "OwnContribution",
    "Reply",
    "Sender",
    "State",
    "answer_text",
    "as_of",
    "expire",
    "handle",
    "is_expired",
    "language_word",
    "same_reference",
    "status_text",
]
