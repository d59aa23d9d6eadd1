"""Speech in the taxonomy: the recorded voices of the speech packages (`VOICES`, labelled by
gender) and the festival / flite voices that synthesise speech (`TTS_VOICES`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Voice:
    package: str
    folder: str  # regex on the name part
    gender: str  # male | female
    language: str
    speaker: str  # distinct speakers get distinct ids (Allison records en and es)


VOICES: tuple[Voice, ...] = (
    Voice("asterisk-core-sounds-en-wav", r"en_us_f_allison/", "female", "en", "allison"),
    Voice("asterisk-core-sounds-es-wav", r"es_mx_f_allison/", "female", "es", "allison"),
    Voice("asterisk-core-sounds-fr-wav", r"fr_ca_f_june/", "female", "fr", "june"),
    Voice("asterisk-core-sounds-it-wav", r"it_it_m_carlo/", "male", "it", "carlo"),
    Voice("asterisk-core-sounds-ru-wav", r"ru_ru_f_ivrvoiceru/", "female", "ru", "ivrvoice-ru"),
    Voice("asterisk-prompt-it-menardi-wav", r"it_it_f_menardi/", "female", "it", "menardi"),
    Voice("kajongg", r"voices/male1/", "male", "en", "kajongg-male1"),
    Voice("kajongg", r"voices/male2/", "male", "en", "kajongg-male2"),
    Voice("kajongg", r"voices/female1/", "female", "en", "kajongg-female1"),
    Voice("kajongg", r"voices/female2/", "female", "en", "kajongg-female2"),
    Voice("kajongg", r"voices/de/male1/", "male", "de", "kajongg-de-male1"),
    Voice("kajongg", r"voices/de/male2/", "male", "de", "kajongg-de-male2"),
    Voice("kajongg", r"voices/de/female1/", "female", "de", "kajongg-de-female1"),
    Voice("kajongg", r"voices/de/female2/", "female", "de", "kajongg-de-female2"),
    # Fish Fillets: "-m-" lines are the small fish (a woman's voice, median F0 ~250 Hz),
    # "-v-" the big fish (a man's voice); both per language package.
    Voice("fillets-ng-data-cs", r"/cs/[^/]*-m-", "female", "cs", "fillets-cs-small-fish"),
    Voice("fillets-ng-data-cs", r"/cs/[^/]*-v-", "male", "cs", "fillets-cs-big-fish"),
    Voice("fillets-ng-data-nl", r"/nl/[^/]*-m-", "female", "nl", "fillets-nl-small-fish"),
    Voice("fillets-ng-data-nl", r"/nl/[^/]*-v-", "male", "nl", "fillets-nl-big-fish"),
    Voice("fillets-ng-data", r"/en/[^/]*-m-", "female", "en", "fillets-en-small-fish"),
    Voice("fillets-ng-data", r"/en/[^/]*-v-", "male", "en", "fillets-en-big-fish"),
)
SPEECH_PACKAGES = frozenset(v.package for v in VOICES)
SPEECH_LABEL = {
    "male": ("man_speaking", "a man speaking|a male voice talking|a man says something"),
    "female": ("woman_speaking", "a woman speaking|a female voice talking|a woman says something"),
}


@dataclass(frozen=True)
class TTSVoice:
    engine: str  # flite | festival
    voice: str  # flite -voice NAME, or festival (voice_NAME)
    package: str  # the Debian package holding the voice
    gender: str
    language: str
    speaker: str  # recorded speaker the voice was built from (kal16 and kal_diphone: one speaker)


TTS_VOICES: tuple[TTSVoice, ...] = (
    TTSVoice("flite", "awb", "flite", "male", "en", "cmu-awb"),
    TTSVoice("flite", "rms", "flite", "male", "en", "cmu-rms"),
    TTSVoice("flite", "slt", "flite", "female", "en", "cmu-slt"),
    TTSVoice("flite", "kal16", "flite", "male", "en", "cmu-kal"),
    TTSVoice("festival", "kal_diphone", "festvox-kallpc16k", "male", "en", "cmu-kal"),
    TTSVoice("festival", "cmu_us_slt_arctic_hts", "festvox-us-slt-hts", "female", "en", "cmu-slt"),
    TTSVoice("festival", "msu_ru_nsh_clunits", "festvox-ru", "male", "ru", "msu-nsh"),
)
