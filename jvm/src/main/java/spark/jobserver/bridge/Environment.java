package spark.jobserver.bridge;

import com.typesafe.config.Config;
import java.util.Collections;
import java.util.List;
import spark.jobserver.NamedObjects;
import spark.jobserver.api.JobEnvironment;

final class Environment implements JobEnvironment, NamedObjects {
    private final String jobId;
    private final Config contextConfig;
    private final List<String> names;

    Environment(String jobId, Config contextConfig, List<String> names) {
        this.jobId = jobId;
        this.contextConfig = contextConfig;
        this.names = Collections.unmodifiableList(names);
    }

    @Override
    public String jobId() {
        return jobId;
    }

    @Override
    public NamedObjects namedObjects() {
        return this;
    }

    @Override
    public Config contextConfig() {
        return contextConfig;
    }

    @Override
    public List<String> getNames() {
        return names;
    }
}
