"""Judged queries for the training corpus (never the dev corpus), made the way the dev
queries were: a sound designer's phrase, and as relevant every file whose name says it is
that sound (patterns over the words of the file name; folders name the game more often
than the sound), then read through by hand.

    python bench/make_train_queries.py TRAIN_CORPUS_DIR > bench/train_queries.json

The patterns live here so the judgement is reproducible and reviewable; a query whose
pattern matches nothing or more than 80 files is left out (too vague to judge).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

AUDIO = {".wav", ".ogg", ".flac", ".mp3", ".aif", ".aiff"}

# query -> regular expression over the path's words (lower case, "_" and "-" as spaces).
PATTERNS = {
    "explosion": r"\b(explo\w*|boom|blast|kaboom)\b",
    "car engine": r"\b(engine|motor)\b",
    "footsteps": r"\b(step\w*|footstep\w*|walk\w*)\b",
    "footsteps on snow": r"(step\w*|walk\w*).*snow|snow.*(step|walk)",
    "door opening": r"\bdoor\w*\b.*\bopen|\bopen\w*\b.*\bdoor",
    "door closing": r"\bdoor\w*\b.*\bclos|\bclos\w*\b.*\bdoor",
    "glass breaking": r"\bglass\b|\bshatter\w*",
    "thunder": r"\bthunder\w*",
    "water splash": r"\bsplash\w*|\bsplosh",
    "bubbles underwater": r"\bbub+les?\b|\bbubbl\w*",
    "laser shot": r"\blaser\w*|\bzap\w*",
    "gunshot": r"\b(gun\w*|shot\w*|pistol|rifle|smg|shotgun)\b",
    "bird chirping": r"\bbird\w*|\bchirp\w*|\btweet",
    "wind blowing": r"\bwind\b|\bgust\w*|\bbreeze",
    "rain": r"\brain\w*",
    "bell ringing": r"\bbells?\b|\bding\w*|\bchime\w*",
    "button click": r"\bclick\w*|\bbutton\w*",
    "coin pickup": r"\bcoins?\b|\bgold\w*|\bmoney",
    "jump": r"\bjump\w*",
    "punch hit": r"\bpunch\w*|\bhit\b|\bhits\b|\bimpact\w*|\bthud\w*",
    "scream": r"\bscream\w*|\byell\w*|\bshout\w*",
    "helicopter": r"\bhelicopter\w*|\bchopper",
    "car crash": r"\bcrash\w*|\bcollision\w*",
    "horn honk": r"\bhorn\w*|\bhonk\w*",
    "beep": r"\bbeep\w*|\bbleep\w*",
    "alarm siren": r"\balarm\w*|\bsiren\w*",
    "magic spell": r"\bmagic\w*|\bspell\w*",
    "fire burning": r"\bflame\w*|\bburn\w*|\bcampfire|\bfireplace|\bfire crackl",
    "sword swing": r"\bsword\w*|\bblade\w*|\bslash\w*|\bswing\w*",
    "typing on a keyboard": r"\btyp(e|ing|ewriter)\w*|\bkeyboard",
    "crowd cheering": r"\bcrowd\w*|\bcheer\w*|\bapplau\w*",
    "snare drum": r"\bsnare\w*",
    "kick drum": r"\bkick\w*|\bbass ?drum",
    "hi hat": r"\bhi ?hat\w*|\bhh\b",
    "cymbal crash": r"\bcymbal\w*|\bride\b",
    "tom drum": r"\btoms?\b",
    "hand clap": r"\bclaps?\b|\bclapping",
    "power up": r"\bpower ?up\w*|\bpowerup\w*",
    "game over": r"\bgame ?over\b|\blose\b|\blost\b",
    "level complete": r"\bcomplete\w*|\bvictory|\bwin\b|\bwon\b|\bfinish\w*",
    "menu select": r"\bmenu\w*|\bselect\w*",
    "pop": r"\bpop\w*\b",
    "whoosh": r"\bwhoosh\w*|\bswoosh\w*|\bwoosh\w*|\bswish\w*",
    "splat squish": r"\bsplat\w*|\bsquish\w*|\bsquash\w*",
    "eating": r"\beat\w*|\bchew\w*|\bmunch\w*|\bbite\b",
    "dog barking": r"\bdog\w*|\bbark\w*",
    "monster growl": r"\bmonster\w*|\bgrowl\w*|\broar\w*|\bsnarl\w*",
    "teleport": r"\bteleport\w*|\bwarp\w*",
    "electric buzz": r"\belectric\w*|\bbuzz\w*|\bspark\w*",
    "metal clank": r"\bmetal\w*|\bclank\w*|\bclang\w*",
    "wood knock": r"\bwood\w*|\bknock\w*",
    "spaceship engine": r"\bspaceship\w*|\bship engine|\bthrust\w*",
    "ball bouncing": r"\bball\w* bounc|\bbounc\w*",
    "elevator": r"\belevator\w*|\blift\b",
    "countdown": r"\bcount ?down\w*|\bcountdown",
    "heartbeat": r"\bheart\w*",
    "clock ticking": r"\bclock\w*|\btick\w*",
    "pickup item": r"\bpick ?up\w*|\bgrab\w*|\bcollect\w*",
    "break glass window": r"\bwindow\w*",
    "error buzzer": r"\berror\w*|\bwrong\b|\bfail\w*|\bdenied",
}

# Phrasings a sound designer types that are not the files' own words (the dev queries
# are mostly of this kind: "thunder rumbling in a storm", not "thunder"); without them a
# fusion fitted here leans on literal name matches more than real queries reward.
DESCRIBED = {
    "nuclear bomb blast": r"^(?!we ve).*(\bnuke\w*|\bbomb\w*|\batomic\b)",
    "walking on gravel": r"\bgravel\b",
    "footsteps in the grass": r"\bgrass\b",
    "person groaning in pain": r"\bpain\b|\bhurt\w*|\binjur\w*|\bouch\b",
    "character dying": r"\bdeath\b|\bdie\b|\bdies\b|\bdead\b|\bcritdie\b|\bdying\b",
    "weapon reloading": r"\breload\w*",
    "rifle bullet fired": r"^(?!.*explo)(?!.*\bfire bullet)"
    r".*\b(rifle|bullet\w*|shot|shoot\w*|pistol|gunshot\w*|shotgun)\b",
    "sci-fi blaster": r"\blaser\w*|\bblaster\w*|\bphaser\w*|\bplasma\b|\bion\b",
    "rocket taking off": r"\brocket\w*|\bmissile\w*|\blaunch\w*",
    "river flowing": r"\bwaterfall\w*|\briver\w*|\bstream\b",
    "bubbling lava": r"\blava\b",
    "frog croaking": r"\bfrog\w*|\bcroak\w*",
    "crickets at night": r"\bcricket\w*",
    "horse neighing": r"\bhorse\w*|\bneigh\w*",
    "wolf howling": r"\bwolf\b|\bwolves\b|\bhowl\w*",
    "sawing wood": r"\bsaw\w*|\bwoodcutting\b|\bbenchsaw\b",
    "blacksmith hammering": r"\banvil\w*|\bhammer\w*|\bsmith\w*",
    "digging and mining": r"\bdig\w*|\bdug\b|\bshovel\w*",
    "tyres screeching": r"\bskid\w*|\bscreech\w*",
    "jet plane flying by": r"\bjet\w*|\baircraft\w*|\bplane\b|\bairplane\w*",
    "zombie moaning": r"\bzombie\w*|\bgroan\w*|\bmoan\w*",
    "someone laughing": r"\blaugh\w*",
    "notification ding": r"\bnotif\w*|\bmessage\b|\balert\w*",
    "success jingle": r"\bsuccess\w*|\bvictory\b|\bbonus\w*",
    "machinery running": r"^(?!.*collide)(?!.*drum).*(\bmachine(ry|\d*)\b|\bgears?\b|\bpump\b)",
    "rubber squeak": r"\bsqueak\w*",
    "cartoon spring boing": r"\bboing\w*|\bspring\w*",
    "slurping suction": r"^(?!.*you ?suck)(?!.*suckit).*(\bslurp\w*|\bsuck\w*)",
    "flipping a switch": r"\bswitch\w*|\blever\w*",
    "birds singing in a forest": r"\bbirds?\b|\bcrows?\b|\bptak\w*|\bchirp\w*",
    "background ambience": r"\bamb\b|\bambien\w*|\batmos\w*",
    "flute melody": r"\bflute\w*",
    "guitar strumming": r"\bguitar\w*",
    "piano chord": r"\bpiano\w*",
    "xylophone note": r"\bxylo\w*",
    "cloth rustling": r"\bcloth\w*|\bleather\b|\brustl\w*",
    "putting out a fire": r"\bextinguish\w*",
    "diving into water": r"\bsplash\w*|\bswim\w*|\bdive\b|\bdiving\b",
    "heavy door slam": r"\bdoors?\b.*\b(slam\w*|clos\w*|shut\w*)|\bslam\w*",
    "spell casting": r"\bspell\w*|\bmagic\w*|\bpotion\w*",
}


def words(rel: str) -> str:
    """The words of a file's name, as the index splits them (camelCase, digits)."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", Path(rel).stem)
    return re.sub(r"[\W_]+", " ", text).lower()


def main() -> None:
    root = Path(sys.argv[1])
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix.lower() in AUDIO)
    queries = []
    for query, pattern in {**PATTERNS, **DESCRIBED}.items():
        regex = re.compile(pattern)
        relevant = [f for f in files if regex.search(words(f))]
        if 0 < len(relevant) <= 80:
            queries.append({"query": query, "relevant": relevant})
    json.dump(queries, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
