"""The silences the voice stage puts into a narration, in seconds: shared by the voice stage, which inserts
them, and the built-in writer, which counts them when it fills a target duration.

- ``SCENE_PAUSE_SECONDS`` between two scenes' speech, on top of the little the engines leave (25 ms to
  0.16 s): half ends the scene before, half starts the scene after, so that the picture cuts in the middle.
- ``ENDING_SECONDS`` after the last word, under which the music fades out.
- ``PIPER_SENTENCE_SECONDS`` between two sentences of a scene spoken by Piper, which speaks sentence by
  sentence with almost no pause of its own (0.16 s after a full stop, against espeak's 0.35 s); Piper's
  own command line adds such silence too (``--sentence-silence``).
"""

SCENE_PAUSE_SECONDS = 0.4
ENDING_SECONDS = 0.4
PIPER_SENTENCE_SECONDS = 0.2
