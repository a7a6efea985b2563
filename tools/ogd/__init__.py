"""The shared library of the commands in tools/ and bench/ (standard library only).

common      errors, the cache, stamps, locks, progress lines, running commands
docker      the engine, image labels and ids, building an image from a script
images      ogd-base:trixie|bookworm (debootstrap) and ogd-pkgs:trixie
roles       role defaults and settings, the packages the roles install
containers  the systemd container's `docker run` and the wait for systemd
recap       ansible-playbook's PLAY RECAP and profile_tasks summary
venv        the dev venv;  galaxy  the pinned collections;  env  the environment
"""
