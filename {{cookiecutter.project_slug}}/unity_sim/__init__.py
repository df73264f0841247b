"""A simulated Unity ML-Agents Linux player build, for testing trainers without a Unity build.

``python -m unity_sim.package_build --name 3DBall --out builds`` writes ``builds/3DBall.zip``: a
``3DBall.x86_64`` launcher, ``UnityPlayer.so`` and ``3DBall_Data/`` holding this package. Extracted,
it is started by ``mlagents_envs.environment.UnityEnvironment(file_name=".../3DBall")`` exactly like a
real build and speaks the real gRPC protocol (see ``player.py``). The task is Unity's 3DBall
(Ball3DAgent's actions, rewards, observations and limits, its ball rolling at the scene's 0.02 s
physics step; see ``ball_balance.py``): random actions drop the ball within about 22 decisions, a
balancing policy scores 100. It can report custom stats (StatsSideChannel) and paces its steps by
the engine configuration's time_scale as a real build does (``clock.py``).

Modules: ``player`` (the program: arguments, gRPC client loop), ``academy`` (commands, agents,
sensors, side channels, stats), ``ball_balance`` (the task, NumPy), ``clock`` (time_scale and frame
rates), ``wire`` (message bytes, PNG, side-channel parsing), ``package_build`` (the zip).
"""
