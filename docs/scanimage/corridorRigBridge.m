function corridorRigBridge(src, evt, varargin)
% corridorRigBridge  ScanImage user function linking ScanImage to the corridor rig.
%
% Register it in ScanImage (Settings > User Functions) for the events
%   acqModeStart, frameAcquired, acqDone, acqModeDone, acqAbort
% and call  corridorRigBridge('open', endpointCmd, endpointFrames[, serverSecret, trustedDir])
% once from the MATLAB prompt (or startup.m) before the first session. See README.md beside this file.
%
% The Python bridge (rig.mesoscope.bridge) serves the rig's commands on its own thread; this file only
% reports acquisition events to it, and a MATLAB timer carries out the rig's start/stop commands.

persistent bridge cmdTimer acqT0

if ischar(src) || isstring(src)  % called from the prompt, not by ScanImage
    switch char(src)
        case 'open'
            args = [{evt}, varargin];
            bridge = py.rig.mesoscope.bridge.open_for_scanimage(args{:});
            cmdTimer = timer('ExecutionMode', 'fixedSpacing', 'Period', 0.05, ...
                'TimerFcn', @(~, ~) runRigCommands(bridge), 'Name', 'corridorRigBridge');
            start(cmdTimer);
            fprintf('corridor rig bridge: commands on %s, frames on %s\n', ...
                char(bridge.endpoint_cmd), char(bridge.endpoint_frames));
        case 'close'
            if ~isempty(cmdTimer), stop(cmdTimer); delete(cmdTimer); cmdTimer = []; end
            if ~isempty(bridge), bridge.close(); bridge = []; end
        otherwise
            error('corridorRigBridge: unknown action ''%s'' (use ''open'' or ''close'')', char(src));
    end
    return
end

if isempty(bridge)
    return  % not opened: ScanImage runs as usual, nothing is reported
end
hSI = src.hSI;
switch evt.EventName
    case 'acqModeStart'
        % Frame timestamps are seconds since the acquisition trigger; anchor them to the bridge clock.
        acqT0 = py.time.perf_counter();
        bridge.acquisition_started(char(hSI.hScan2D.logFileStem), hSI.hRoiManager.scanFrameRate, ...
            int64(hSI.hStackManager.actualNumSlices));
    case 'frameAcquired'
        stripe = hSI.hDisplay.stripeDataBuffer{hSI.hDisplay.stripeDataBufferPointer};
        try  % the bridge refuses values the protocol cannot carry (a Python ValueError); ScanImage goes on
            bridge.frame(int64(stripe.frameNumberAcq), acqT0 + stripe.frameTimestamp);
        catch err
            warning('corridorRigBridge:frame', 'corridor rig bridge: frame not reported: %s', err.message);
        end
    case {'acqModeDone', 'acqAbort'}
        bridge.acquisition_stopped(evt.EventName);
end
end

function runRigCommands(bridge)
% Carry out the rig's queued commands; never blocks (take() returns None when the queue is empty).
% Also watches the bridge's service thread: if it has died, say so once (the rig sees the heartbeats
% stop); 'close' then 'open' starts a new bridge.
persistent reported
failure = bridge.service_failure;
if ~isa(failure, 'py.NoneType')
    if isempty(reported) || ~reported
        warning('corridorRigBridge:bridgeDied', 'corridor rig bridge: %s', char(failure));
        reported = true;
    end
    return
end
reported = false;
hSI = evalin('base', 'hSI');
cmd = bridge.controller.take();
while ~isa(cmd, 'py.NoneType')
    action = char(cmd{1});
    switch action
        case 'start'
            hSI.hScan2D.logFileStem = char(cmd{2});
            hSI.hChannels.loggingEnable = true;
            hSI.startGrab();
        case 'stop'
            hSI.abort();
    end
    cmd = bridge.controller.take();
end
end
