package spark.jobserver.bridge;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.streaming.StreamingContext;
import spark.jobserver.api.JobEnvironment;
import spark.jobserver.japi.BaseJavaJob;
import spark.jobserver.japi.JavaValidationException;

/**
 * How the driver (through py4j) runs jobs written against spark-jobserver's JVM API: it finds
 * what the job needs from its context, makes its Typesafe Config and JobEnvironment, calls
 * verify (or a Scala job's validate) and run, and turns the result into plain values.
 */
public final class JobBridge {
    // The driver's names for what a context hands its jobs (driver/spark.py).
    static final String SESSION = "session";
    static final String SPARK_CONTEXT = "spark_context";
    static final String STREAMING = "streaming";

    private final ScalaJobSupport scala;

    public JobBridge() {
        scala = loadScalaSupport();
    }

    /** Whether spark-jobserver's Scala traits were built into this adapter. */
    public boolean hasScalaTraits() {
        return scala != null;
    }

    /**
     * What a job of spark-jobserver's JVM API needs from its context: {@code session},
     * {@code spark_context} or {@code streaming}; "" for a class that is no such job.
     */
    public String contextKind(Class<?> named) {
        Class<?> jobClass = moduleClassOf(named);
        if (BaseJavaJob.class.isAssignableFrom(jobClass)) {
            for (Method method : jobClass.getMethods()) {
                Class<?>[] parameters = method.getParameterTypes();
                if (method.getName().equals("run") && !method.isBridge() && parameters.length == 3
                        && parameters[1] == JobEnvironment.class) {
                    String kind = kindOf(parameters[0]);
                    if (!kind.isEmpty()) {
                        return kind;
                    }
                }
            }
            return "?"; // a job of the API whose context type is none of ours
        }
        return scala == null ? "" : scala.contextKind(jobClass);
    }

    private static String kindOf(Class<?> contextType) {
        if (contextType == SparkSession.class) {
            return SESSION;
        }
        if (contextType == JavaSparkContext.class || contextType == org.apache.spark.SparkContext.class) {
            return SPARK_CONTEXT;
        }
        if (contextType == StreamingContext.class) {
            return STREAMING;
        }
        return "";
    }

    /** The job object: a Scala {@code object}'s instance, else a new instance of the class. */
    public Object instantiate(Class<?> named) throws ReflectiveOperationException {
        Class<?> jobClass = moduleClassOf(named);
        if (jobClass != named) {
            return jobClass.getField("MODULE$").get(null);
        }
        return jobClass.getDeclaredConstructor().newInstance();
    }

    /** For a Scala {@code object} named by its name, the class of its instance ({@code Name$}). */
    private static Class<?> moduleClassOf(Class<?> named) {
        try {
            Class<?> module = Class.forName(named.getName() + "$", false, named.getClassLoader());
            return Modifier.isStatic(module.getField("MODULE$").getModifiers()) ? module : named;
        } catch (ClassNotFoundException | NoSuchFieldException notAnObject) {
            return named;
        }
    }

    public JobEnvironment environment(String jobId, String contextConfigJson, List<String> namedObjectNames) {
        return new Environment(jobId, ConfigFactory.parseString(contextConfigJson), namedObjectNames);
    }

    /** The job's data from its config (a Typesafe Config of the JSON), or its problems. */
    public Verified verify(Object job, Object context, JobEnvironment runtime, String configJson) {
        Config config = ConfigFactory.parseString(configJson);
        if (!(job instanceof BaseJavaJob<?, ?, ?>)) {
            return scala.validate(job, context, runtime, config);
        }
        @SuppressWarnings("unchecked")
        BaseJavaJob<Object, Object, Object> javaJob = (BaseJavaJob<Object, Object, Object>) job;
        try {
            return Verified.valid(javaJob.verify(context, runtime, config));
        } catch (JavaValidationException problems) {
            return Verified.invalid(String.join("; ", problems.problems()), problems.getClass().getName(),
                    stackOf(problems));
        } catch (RuntimeException error) { // spark-jobserver took any exception as a problem
            String message = error.getMessage() == null ? error.toString() : error.getMessage();
            return Verified.invalid(message, error.getClass().getName(), stackOf(error));
        }
    }

    /** Run the job with what verify made; its result as plain values. */
    public Object run(Object job, Object context, JobEnvironment runtime, Object data) {
        if (!(job instanceof BaseJavaJob<?, ?, ?>)) {
            return Results.plain(scala.runJob(job, context, runtime, data));
        }
        @SuppressWarnings("unchecked")
        BaseJavaJob<Object, Object, Object> javaJob = (BaseJavaJob<Object, Object, Object>) job;
        return Results.plain(javaJob.run(context, runtime, data));
    }

    /** A static method's result (a job with {@code public static Object run(...)}) as plain values. */
    public Object plain(Object result) {
        return Results.plain(result);
    }

    static String stackOf(Throwable error) {
        StringWriter text = new StringWriter();
        error.printStackTrace(new PrintWriter(text));
        return text.toString();
    }

    private static ScalaJobSupport loadScalaSupport() {
        try {
            Class<?> support = Class.forName("spark.jobserver.bridge.ScalaJobs", true,
                    JobBridge.class.getClassLoader());
            return (ScalaJobSupport) support.getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException | LinkageError notBuilt) {
            return null;
        }
    }
}
