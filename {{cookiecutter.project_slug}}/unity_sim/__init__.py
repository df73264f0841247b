"""A simulated Unity ML-Agents Linux player build, for testing trainers without a Unity build.

``python -m unity_sim.package_build --name 3DBall --out builds`` writes ``builds/3DBall.zip``: a
``3DBall.x86_64`` launcher, ``UnityPlayer.so`` and ``3DBall_Data/`` holding this package. Extracted,
it is started by ``mlagents_envs.environment.UnityEnvironment(file_name=".../3DBall")`` exactly like a
real build and speaks the real gRPC protocol (see ``player.py``). The task is a simplified 3DBall
(see ``ball_balance.py``): random actions score about 1.6 per episode, a balancing policy 100.

Modules: ``player`` (the program: arguments, gRPC client loop), ``academy`` (commands, agents,
sensors, side channels), ``ball_balance`` (the task, NumPy), ``wire`` (message bytes, PNG, side-channel
parsing), ``package_build`` (the zip).
"""
